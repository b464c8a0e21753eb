import { expect } from 'chai';
import type * as grpc from '@grpc/grpc-js';
import type { DestinationStream } from 'pino';
import { FailureLimiter } from '../src/auth/failure-limiter.js';
import { deny, type Decision } from '../src/auth/decision.js';
import type { AuthPipeline } from '../src/auth/pipeline.js';
import { RequestHeaders, type AuthRequest } from '../src/auth/request.js';
import type { MaybePromise } from '../src/store/store.js';
import { parseConfig } from '../src/config/load.js';
import { createCheckHandler, type CheckRuntime } from '../src/envoy/check-handler.js';
import { INTERNAL_ERROR_RESPONSE, type CheckResponseBuilder } from '../src/envoy/check-response.js';
import type { CheckRequestMessage, CheckResponseMessage } from '../src/envoy/messages.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { createRuntime } from '../src/service.js';
import { MemoryStore, TokenDigester } from '../src/store/index.js';
import { CapturedLog, envoyRequest, outcome, setHeaders, startService, type RunningService } from './helpers/service.js';

const DEVICES = 40;
const KINDS = ['allow', 'wrong-token', 'non-ddi'] as const;

function tokenOf(index: number): string {
  return `token-of-device-${String(index).padStart(4, '0')}-0123456789abcdef`;
}

function configText(): string {
  const targets = Array.from({ length: DEVICES }, (_, index) => `      "device-${index}": { securityToken: "${tokenOf(index)}" }`).join('\n');
  // Without failure limits, so that the wrong tokens sent together do not turn later calls into 429s.
  return `
rateLimit: { enabled: false }
tenants:
  T:
    config: { authentication.targettoken.enabled: true }
    targets:
${targets}
`;
}

describe('Check batches', () => {
  describe('over gRPC', () => {
    let service: RunningService;

    before(async () => {
      service = await startService(configText());
    });

    after(async () => {
      await service.stop();
    });

    it('responds to each concurrent call separately', async () => {
      // Sent together, so that many calls arrive in the same event-loop turn and share a batch.
      const calls = Array.from({ length: 300 }, (_, index) => {
        const device = index % DEVICES;
        const kind = KINDS[index % KINDS.length];
        const path = kind === 'non-ddi' ? `/T/rest/v1/targets/device-${device}` : `/T/controller/v1/device-${device}`;
        const token = kind === 'wrong-token' ? tokenOf((device + 1) % DEVICES) : tokenOf(device);
        return { device, kind, response: service.check(envoyRequest(path, { authorization: `TargetToken ${token}` })) };
      });

      for (const call of calls) {
        const response = await call.response;
        if (call.kind === 'allow') {
          expect(outcome(response), `allow of device-${call.device}`).to.deep.equal({ grpc: 0, http: 200 });
          expect(setHeaders(response)['x-ddi-controller-id'], `identity of device-${call.device}`).to.equal(`device-${call.device}`);
        } else if (call.kind === 'wrong-token') {
          expect(outcome(response), `wrong token of device-${call.device}`).to.deep.equal({ grpc: 16, http: 401 });
        } else {
          expect(outcome(response), `non-DDI path of device-${call.device}`).to.deep.equal({ grpc: 7, http: 403 });
        }
      }
      const decisions = service.log.records.filter((record) => record.result !== undefined);
      expect(decisions.filter((record) => record.result === 'allow')).to.have.length(100);
      expect(decisions.filter((record) => record.result === 'deny')).to.have.length(200);
    });
  });

  describe('handler', () => {
    const log = new CapturedLog();
    const logger = createLogger('info', log.stream());
    const config = parseConfig(configText(), '/tmp/hawkbit-ext-authz-batch-test.yaml', { env: {} });
    const digester = new TokenDigester(config.tokenDigestKey);
    let limiter: FailureLimiter;

    /** Metrics that fail while counting one device's decision, after its response was handed over. */
    class FailingMetrics extends Metrics {
      override recordDecision(decision: Decision, durationSeconds: number, audit: boolean): void {
        if (decision.controllerId === 'device-7') {
          throw new Error('metrics failed for device-7');
        }
        super.recordDecision(decision, durationSeconds, audit);
      }
    }

    before(() => {
      limiter = new FailureLimiter(config.rateLimit, config.ddi.certificate.trustedProxies, { logger });
    });

    after(async () => {
      await limiter.close();
    });

    /** Returns the runtime of the test configuration on the embedded store. */
    function runtimeWith(metrics: Metrics | undefined): CheckRuntime {
      return createRuntime(config, new MemoryStore(config.tenants, digester), digester, metrics, limiter);
    }

    /**
     * Returns a handler on the embedded store. With `waiting`, every decision arrives as a promise, as with a Redis lookup.
     * With `failing`, deciding device-7 fails: it throws, or with `waiting` its promise rejects.
     */
    function handlerWith(metrics: Metrics, options: { waiting?: boolean; failing?: boolean } = {}): grpc.handleUnaryCall<CheckRequestMessage, CheckResponseMessage> {
      const runtime = runtimeWith(metrics);
      const { pipeline } = runtime;
      const decide = (request: AuthRequest): MaybePromise<Decision> => {
        if (options.failing && request.path.endsWith('/device-7')) {
          throw new Error('deciding device-7 failed');
        }
        return pipeline.decide(request);
      };
      runtime.pipeline = {
        decide: options.waiting ? (request: AuthRequest) => new Promise((resolve) => resolve(decide(request))) : decide,
      } as unknown as AuthPipeline;
      return createCheckHandler({ runtime: () => runtime, logger, metrics });
    }

    function callOf(device: number): grpc.ServerUnaryCall<CheckRequestMessage, CheckResponseMessage> {
      const request = envoyRequest(`/T/controller/v1/device-${device}`, { authorization: `TargetToken ${tokenOf(device)}` });
      return { request, getDeadline: () => Infinity } as unknown as grpc.ServerUnaryCall<CheckRequestMessage, CheckResponseMessage>;
    }

    it('responds after the arrival turn', async () => {
      const handler = handlerWith(new Metrics({ version: 'test', tenantLabel: false }));
      const responded: number[] = [];
      for (const device of [1, 2, 3]) {
        handler(callOf(device), () => responded.push(device));
      }
      expect(responded, 'responses sent inside the handler call').to.deep.equal([]);
      await new Promise((resolve) => setImmediate(resolve));
      expect(responded).to.deep.equal([1, 2, 3]);
    });

    it('sends the rest when one fails', async () => {
      log.lines.length = 0;
      const handler = handlerWith(new Metrics({ version: 'test', tenantLabel: false }), { failing: true });
      const responses = new Map<number, CheckResponseMessage | null | undefined>();
      for (const device of [5, 6, 7, 8, 9]) {
        handler(callOf(device), (error, response) => {
          expect(error).to.equal(null);
          responses.set(device, response);
        });
      }
      await new Promise((resolve) => setImmediate(resolve));

      expect([...responses.keys()]).to.deep.equal([5, 6, 7, 8, 9]);
      expect(outcome(responses.get(7) as CheckResponseMessage), 'the failed call').to.deep.equal({ grpc: 7, http: 503 });
      for (const device of [5, 6, 8, 9]) {
        expect(setHeaders(responses.get(device) as CheckResponseMessage)['x-ddi-controller-id'], `device-${device}`).to.equal(`device-${device}`);
      }
      const error = log.records.find((record) => record.msg === 'Check failed; denying');
      expect(JSON.stringify(error)).to.include('deciding device-7 failed');
      const results = log.records.filter((record) => record.msg === 'allow' || record.msg === 'deny').map((record) => record.reason ?? record.controllerId);
      expect(results, 'decision lines').to.deep.equal(['device-5', 'device-6', 'internal_error', 'device-8', 'device-9']);
    });

    it('denies a waiting call that fails', async () => {
      log.lines.length = 0;
      const handler = handlerWith(new Metrics({ version: 'test', tenantLabel: false }), { waiting: true, failing: true });
      const responses = await Promise.all(
        [6, 7, 8].map(
          (device) =>
            new Promise<CheckResponseMessage | null | undefined>((resolve, reject) => {
              handler(callOf(device), (error, response) => (error ? reject(error) : resolve(response)));
            }),
        ),
      );

      expect(outcome(responses[1] as CheckResponseMessage), 'the failed call').to.deep.equal({ grpc: 7, http: 503 });
      expect(setHeaders(responses[0] as CheckResponseMessage)['x-ddi-controller-id']).to.equal('device-6');
      expect(setHeaders(responses[2] as CheckResponseMessage)['x-ddi-controller-id']).to.equal('device-8');
      const error = log.records.find((record) => record.msg === 'Check failed; denying');
      expect(JSON.stringify(error)).to.include('deciding device-7 failed');
    });

    it('counts a decision whose line fails', async () => {
      const lines: string[] = [];
      // A destination that rejects the decision line of device-7 and keeps every other line.
      const destination = {
        write(line: string): boolean {
          if (line.includes('"controllerId":"device-7"')) {
            throw new Error('log destination failed');
          }
          lines.push(line);
          return true;
        },
      };
      const failingLogger = createLogger('info', destination as unknown as DestinationStream);
      const metrics = new Metrics({ version: 'test', tenantLabel: false });
      const runtime = runtimeWith(metrics);
      const handler = createCheckHandler({ runtime: () => runtime, logger: failingLogger, metrics });
      const responses: (CheckResponseMessage | null | undefined)[] = [];
      for (const device of [6, 7, 8]) {
        handler(callOf(device), (_error, response) => responses.push(response));
      }
      await new Promise((resolve) => setImmediate(resolve));

      expect(responses.map((response) => setHeaders(response as CheckResponseMessage)['x-ddi-controller-id'])).to.deep.equal(['device-6', 'device-7', 'device-8']);
      const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(records.filter((record) => record.msg === 'allow').map((record) => record.controllerId)).to.deep.equal(['device-6', 'device-8']);
      expect(JSON.stringify(records.find((record) => record.msg === 'failed to log or count a Check decision'))).to.include('log destination failed');
      const { body } = await metrics.render();
      expect(body, 'the failed line is still counted').to.match(/decisions_total\{[^}]*result="allow"[^}]*\} 3\n/);
    });

    it('denies every call when the builder fails', async () => {
      log.lines.length = 0;
      const metrics = new Metrics({ version: 'test', tenantLabel: false });
      const runtime = runtimeWith(metrics);
      // The builder fails for the decision and for the 503 too, so only the handler's constant response is left.
      runtime.responses = {
        build: () => {
          throw new Error('builder failed');
        },
        buildAuditPass: () => {
          throw new Error('builder failed');
        },
      } as unknown as CheckResponseBuilder;
      const handler = createCheckHandler({ runtime: () => runtime, logger, metrics });
      const responses: (CheckResponseMessage | null | undefined)[] = [];
      for (const device of [1, 2]) {
        handler(callOf(device), (error, response) => {
          expect(error).to.equal(null);
          responses.push(response);
        });
      }
      await new Promise((resolve) => setImmediate(resolve));

      expect(responses.map((response) => outcome(response as CheckResponseMessage))).to.deep.equal([
        { grpc: 7, http: 503 },
        { grpc: 7, http: 503 },
      ]);
      const reasons = log.records.filter((record) => record.msg === 'deny').map((record) => record.reason);
      expect(reasons).to.deep.equal(['internal_error', 'internal_error']);
    });

    it('equals the builder 503 deny', () => {
      const runtime = runtimeWith(undefined);
      expect(runtime.responses.build(deny('internal_error'), new RequestHeaders())).to.deep.equal(INTERNAL_ERROR_RESPONSE);
    });

    for (const waiting of [false, true]) {
      it(`records decisions after sending${waiting ? ' a waiting one' : ''}`, async () => {
        log.lines.length = 0;
        const metrics = new FailingMetrics({ version: 'test', tenantLabel: false });
        const handler = handlerWith(metrics, { waiting });
        const linesAtSend: number[] = [];
        const responses = await Promise.all(
          [6, 7, 8].map(
            (device) =>
              new Promise<CheckResponseMessage | null | undefined>((resolve, reject) => {
                handler(callOf(device), (error, response) => {
                  linesAtSend.push(log.records.filter((record) => record.msg === 'allow').length);
                  return error ? reject(error) : resolve(response);
                });
              }),
          ),
        );

        expect(linesAtSend, 'decision lines written when each response was handed over').to.deep.equal(waiting ? [0, 1, 2] : [0, 0, 0]);
        // A failure to count a decision comes after its response, so it leaves the response as decided.
        for (const [index, device] of [6, 7, 8].entries()) {
          expect(setHeaders(responses[index] as CheckResponseMessage)['x-ddi-controller-id'], `device-${device}`).to.equal(`device-${device}`);
        }
        const failure = log.records.find((record) => record.msg === 'failed to log or count a Check decision');
        expect(JSON.stringify(failure)).to.include('metrics failed for device-7');
        const allowed = log.records.filter((record) => record.msg === 'allow').map((record) => record.controllerId);
        expect(allowed).to.deep.equal(['device-6', 'device-7', 'device-8']);
        const { body } = await metrics.render();
        expect(body).to.match(/decisions_total\{[^}]*result="allow"[^}]*\} 2\n/);
      });
    }
  });
});
