/**
 * The saturation check: one scenario against the service under growing
 * concurrency. Once the server's event loop is busy all the time, more calls
 * in flight add latency but no throughput, and the benchmark's load level
 * (the last step but one) is shown to be enough.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { grpcRequestBody } from './grpc-frame.js';
import { percentile } from './h2load.js';
import { runOnce, writeConfig, type MeasureContext } from './measure.js';
import type { Scenario } from './scenarios.js';
import { ServerProcess } from './server-process.js';

export interface SaturationStep {
  connections: number;
  streams: number;
  throughput: number;
  p99Ms: number;
  mainThreadUtilisation: number;
  loadGeneratorUtilisation: number;
}

/** Runs the ramp up to the benchmark's load shape and one step beyond it (twice the connections and streams). */
export async function measureSaturation(scenario: Scenario, context: MeasureContext, stepSeconds: number): Promise<SaturationStep[]> {
  const { connections, streams } = context.shape;
  const steps: [number, number][] = [
    [1, 1],
    [1, 4],
    [Math.max(1, connections / 2), Math.max(1, streams / 2)],
    [connections, streams],
    [connections * 2, streams * 2],
  ];
  const config = await writeConfig(scenario, context, `${scenario.name}-saturation`);
  const bodyPath = join(context.folder, `${scenario.name}-saturation.body`);
  writeFileSync(bodyPath, grpcRequestBody(scenario.request(context.certificates)));
  const service = await ServerProcess.start({
    kind: 'service',
    address: config.address,
    configPath: config.path,
    logPath: join(context.folder, `${scenario.name}-saturation.log`),
  });
  const target = { name: 'service', server: service, address: config.address };
  try {
    await runOnce(target, bodyPath, { ...context.shape, durationSeconds: context.shape.warmupSeconds });
    const results: SaturationStep[] = [];
    for (const [stepConnections, stepStreams] of steps) {
      const shape = { ...context.shape, connections: Math.round(stepConnections), streams: Math.round(stepStreams), durationSeconds: stepSeconds };
      const run = await runOnce(target, bodyPath, shape);
      const step = {
        connections: shape.connections,
        streams: shape.streams,
        throughput: run.throughput,
        p99Ms: percentile(run.durationsMs, 0.99),
        mainThreadUtilisation: run.mainThreadUtilisation,
        loadGeneratorUtilisation: run.loadGeneratorUtilisation,
      };
      context.log(
        `  ${step.connections} x ${step.streams} in flight: ${Math.round(step.throughput)} calls/s, p99 ${step.p99Ms.toFixed(2)} ms, ` +
          `event loop ${(step.mainThreadUtilisation * 100).toFixed(0)}%, h2load ${(step.loadGeneratorUtilisation * 100).toFixed(0)}%`,
      );
      results.push(step);
    }
    return results;
  } finally {
    await service.stop();
  }
}
