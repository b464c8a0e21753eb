/**
 * Times the service's own work for one Check in-process, without gRPC and
 * HTTP/2: the real Check handler with each scenario's configuration, so the
 * request adapter, pipeline, failure limiter, decision log line (written to a
 * file), metrics and response builder, for each embedded-store scenario. It
 * isolates this code's cost per call from the gRPC library's, which the no-op
 * server pays as well.
 *
 *   node dist/bench/check-path.js [--calls N] [--repeat N] [--scenario LIST]
 *
 * Each scenario is timed `--repeat` times; the fastest repetition is the one
 * least disturbed by other processes, and the median is printed beside it.
 * CPU time includes the log writes that finish on libuv's threads.
 */
import type * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../src/config/load.js';
import { createCheckHandler } from '../src/envoy/check-handler.js';
import type { CheckRequestMessage, CheckResponseMessage } from '../src/envoy/messages.js';
import { FailureLimiter } from '../src/auth/failure-limiter.js';
import { createLogger, logDestination } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { createRuntime } from '../src/service.js';
import { MemoryStore, TokenDigester } from '../src/store/index.js';
import { makeCertificates } from './certificates.js';
import { grpcRequestBody } from './grpc-frame.js';
import { CONTROLLER_ID, SCENARIOS } from './scenarios.js';
import { authorizationService } from '../src/envoy/proto.js';

const { values } = parseArgs({ options: { calls: { type: 'string' }, repeat: { type: 'string' }, scenario: { type: 'string' } } });
const calls = Number(values.calls ?? 100_000);
const repeat = Number(values.repeat ?? 5);
/** Calls in flight at once: the benchmark's load of 4 connections with 16 streams each. */
const BATCH_SIZE = 64;
const wanted = values.scenario?.split(',');
const folder = mkdtempSync(join(tmpdir(), 'hawkbit-ext-authz-check-path-'));

interface MethodDefinition {
  requestDeserialize(bytes: Buffer): CheckRequestMessage;
}
const check = authorizationService().service.Check as unknown as MethodDefinition;

try {
  const certificates = makeCertificates(folder, CONTROLLER_ID);
  for (const scenario of SCENARIOS) {
    if (scenario.redisTargets || scenario.workers !== undefined || (wanted && !wanted.some((name) => scenario.name.startsWith(name)))) {
      continue;
    }
    const configPath = join(folder, `${scenario.name}.yaml`);
    writeFileSync(configPath, scenario.config({ grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', certificates }));
    const config = loadConfigFile(configPath);
    const logger = createLogger(config.log.level, logDestination(join(folder, `${scenario.name}.log`)));
    const digester = new TokenDigester(config.tokenDigestKey);
    const metrics = config.metrics.enabled ? new Metrics({ version: 'bench', tenantLabel: config.metrics.tenantLabel }) : undefined;
    const limiter = new FailureLimiter(config.rateLimit, config.ddi.certificate.trustedProxies, { logger });
    const runtime = createRuntime(config, new MemoryStore(config.tenants, digester), digester, metrics, limiter);
    const handler = createCheckHandler({ runtime: () => runtime, logger, metrics });
    // Decoded as grpc-js decodes it, so the adapter gets the same object shapes as in the service.
    const body = grpcRequestBody(scenario.request(certificates));
    const message = check.requestDeserialize(body.subarray(5));
    const call = { request: message, getDeadline: () => Infinity } as unknown as grpc.ServerUnaryCall<CheckRequestMessage, CheckResponseMessage>;

    // The handler decides the calls of one event-loop turn together, so calls go in batches of
    // BATCH_SIZE, as many as the benchmark's load keeps in flight.
    const batch = (): Promise<unknown> =>
      Promise.all(
        Array.from(
          { length: BATCH_SIZE },
          () =>
            new Promise<void>((resolve, reject) => {
              handler(call, (error) => (error ? reject(error) : resolve()));
            }),
        ),
      );
    for (let index = 0; index < calls / 10; index += BATCH_SIZE) {
      await batch();
    }
    const times: number[] = [];
    for (let round = 0; round < repeat; round++) {
      const started = process.cpuUsage();
      let done = 0;
      for (; done < calls; done += BATCH_SIZE) {
        await batch();
      }
      const used = process.cpuUsage(started);
      times.push((used.user + used.system) / done);
    }
    await limiter.close();
    times.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)];
    process.stdout.write(`${scenario.name.padEnd(20)} ${times[0].toFixed(2)} µs CPU per call (median ${median.toFixed(2)})\n`);
  }
} finally {
  rmSync(folder, { recursive: true, force: true });
}
