/**
 * The baseline of the benchmark: a Check server on the same gRPC library,
 * proto loading and server options as the service, which returns one fixed
 * CheckResponse without reading the request.
 *
 *   node dist/bench/noop-server.js CONFIG.yaml RESPONSE.json
 *
 * It listens on the configuration's `grpc.address` with the same gRPC server
 * options the service derives from that file, prints one JSON line when it
 * listens, and stops on SIGTERM or SIGINT.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { serverOptions } from '../src/service.js';
import type { CheckResponseMessage } from '../src/envoy/messages.js';
import { HealthService } from '../src/envoy/health.js';
import { AUTHORIZATION_SERVICE_NAME, authorizationService, healthService } from '../src/envoy/proto.js';
import { loadConfigFile } from '../src/config/load.js';
import { applyServeV8Flags } from '../src/cli/v8-tuning.js';

const [configPath, responsePath] = process.argv.slice(2);
if (configPath === undefined || responsePath === undefined) {
  process.stderr.write('usage: node dist/bench/noop-server.js CONFIG.yaml RESPONSE.json\n');
  process.exit(2);
}
// The service's V8 flags, so that the baseline runs the same V8 as the service.
applyServeV8Flags();
const config = loadConfigFile(configPath);
const address = config.grpc.address;
const response = JSON.parse(readFileSync(responsePath, 'utf8')) as CheckResponseMessage;

// Responses go out in batches from a setImmediate callback, as the service sends
// them. That costs about 20% less CPU per call than responding inside grpc-js's
// read callback, and the baseline must be the fastest this stack can do.
let waiting: grpc.sendUnaryData<CheckResponseMessage>[] = [];
const sendBatch = (): void => {
  const batch = waiting;
  waiting = [];
  for (const callback of batch) {
    callback(null, response);
  }
};

const server = new grpc.Server(serverOptions(config));
server.addService(authorizationService().service, {
  Check: (_call: grpc.ServerUnaryCall<unknown, CheckResponseMessage>, callback: grpc.sendUnaryData<CheckResponseMessage>) => {
    if (waiting.length === 0) {
      setImmediate(sendBatch);
    }
    waiting.push(callback);
  },
});
// grpc.health.v1 as the service has it, so the benchmark's readiness probe works on both.
const health = new HealthService(['', AUTHORIZATION_SERVICE_NAME]);
health.setAll('SERVING');
server.addService(healthService().service, health.handlers());
server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) {
    process.stderr.write(`no-op server: cannot listen on ${address}: ${error.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ msg: 'service started', server: 'no-op', port, time: new Date().toISOString() })}\n`);
});

const stop = (): void => {
  server.tryShutdown(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
