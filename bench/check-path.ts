/**
 * Times the service's own work for one Check in-process, without gRPC and
 * HTTP/2: CheckRequest adapter, pipeline and CheckResponse builder, for each
 * embedded-store scenario. It isolates this code's cost per call from the
 * gRPC library's, which the no-op server pays as well.
 *
 *   node dist/bench/check-path.js [--calls N] [--repeat N] [--scenario LIST]
 *
 * Each scenario is timed `--repeat` times; the fastest repetition is the one
 * least disturbed by other processes, and the median is printed beside it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AuthPipeline } from '../src/auth/pipeline.js';
import { loadConfigFile } from '../src/config/load.js';
import { toAuthRequest } from '../src/envoy/check-request.js';
import { CheckResponseBuilder } from '../src/envoy/check-response.js';
import type { CheckRequestMessage } from '../src/envoy/messages.js';
import { createAuthenticators } from '../src/service.js';
import { MemoryStore, TokenDigester } from '../src/store/index.js';
import { makeCertificates } from './certificates.js';
import { grpcRequestBody } from './grpc-frame.js';
import { CONTROLLER_ID, SCENARIOS } from './scenarios.js';
import { authorizationService } from '../src/envoy/proto.js';

const { values } = parseArgs({ options: { calls: { type: 'string' }, repeat: { type: 'string' }, scenario: { type: 'string' } } });
const calls = Number(values.calls ?? 100_000);
const repeat = Number(values.repeat ?? 5);
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
    const digester = new TokenDigester(config.tokenDigestKey);
    const pipeline = new AuthPipeline(new MemoryStore(config.tenants, digester), createAuthenticators(config, digester), config.limits);
    const responses = new CheckResponseBuilder(config);
    // Decoded as grpc-js decodes it, so the adapter gets the same object shapes as in the service.
    const body = grpcRequestBody(scenario.request(certificates));
    const message = check.requestDeserialize(body.subarray(5));

    const once = async (): Promise<void> => {
      const request = toAuthRequest(message);
      responses.build(await pipeline.decide(request), request.headers);
    };
    for (let index = 0; index < calls / 10; index++) {
      await once();
    }
    const times: number[] = [];
    for (let round = 0; round < repeat; round++) {
      const started = process.hrtime.bigint();
      for (let index = 0; index < calls; index++) {
        await once();
      }
      times.push(Number(process.hrtime.bigint() - started) / 1000 / calls);
    }
    times.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)];
    process.stdout.write(`${scenario.name.padEnd(20)} ${times[0].toFixed(2)} µs per call (median ${median.toFixed(2)})\n`);
  }
} finally {
  rmSync(folder, { recursive: true, force: true });
}
