import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { parseConfig } from '../../src/config/load.js';
import type { ServiceConfig } from '../../src/config/schema.js';
import type { CheckRequestMessage, CheckResponseMessage } from '../../src/envoy/messages.js';
import { authorizationService, healthService } from '../../src/envoy/proto.js';
import { createLogger } from '../../src/observability/logger.js';
import { createService, type ServiceHandle } from '../../src/service.js';

/** Every log line the service wrote, as parsed JSON and as raw text. */
export class CapturedLog {
  readonly lines: string[] = [];

  get records(): Record<string, unknown>[] {
    return this.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  get text(): string {
    return this.lines.join('\n');
  }

  stream(): Writable {
    return new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        for (const line of chunk.toString('utf8').split('\n')) {
          if (line.trim() !== '') {
            this.lines.push(line);
          }
        }
        done();
      },
    });
  }
}

export interface RunningService {
  handle: ServiceHandle;
  config: ServiceConfig;
  log: CapturedLog;
  check(request: CheckRequestMessage, options?: { deadlineMs?: number }): Promise<CheckResponseMessage>;
  health(service?: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Starts the real service in-process on free loopback ports, with its log
 * captured, from configuration text. Addresses in the text are overridden.
 */
export async function startService(yamlText: string, options: { env?: NodeJS.ProcessEnv; source?: string } = {}): Promise<RunningService> {
  const config = parseConfig(yamlText, options.source ?? '/tmp/hawkbit-ext-authz-test.yaml', { env: options.env ?? {} });
  config.grpc.address = '127.0.0.1:0';
  config.http.address = '127.0.0.1:0';
  const log = new CapturedLog();
  // The service's own logger format, so tests read the lines operators see.
  const logger = createLogger('debug', log.stream());
  const handle = await createService(config, { logger });

  const AuthClient = authorizationService();
  const HealthClient = healthService();
  const authClient = new AuthClient(handle.grpcAddress, grpc.credentials.createInsecure());
  const healthClient = new HealthClient(handle.grpcAddress, grpc.credentials.createInsecure());

  return {
    handle,
    config,
    log,
    check: (request, checkOptions = {}) =>
      new Promise((resolve, reject) => {
        authClient.Check(request, { deadline: Date.now() + (checkOptions.deadlineMs ?? 5000) }, (error: grpc.ServiceError | null, response: CheckResponseMessage) =>
          error ? reject(error) : resolve(response),
        );
      }),
    health: (service = '') =>
      new Promise((resolve, reject) => {
        healthClient.Check({ service }, (error: grpc.ServiceError | null, response: { status: number }) => {
          if (error) {
            reject(error);
          } else {
            resolve(['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'][response.status] ?? String(response.status));
          }
        });
      }),
    stop: async () => {
      authClient.close();
      healthClient.close();
      await handle.stop({ drainDelayMs: 0, timeoutMs: 2000 });
    },
  };
}

/** A CheckRequest shaped as Envoy's HTTP filter sends it (headers map, lower-case names, pseudo-headers included). */
export function envoyRequest(path: string, headers: Record<string, string> = {}, extra: { source?: string; certificate?: string; method?: string } = {}): CheckRequestMessage {
  const method = extra.method ?? 'GET';
  return {
    attributes: {
      source: {
        address: { socket_address: { address: extra.source ?? '192.0.2.10', port_value: 51234 } },
        certificate: extra.certificate ?? '',
      },
      request: {
        http: {
          id: '4711',
          method,
          path,
          host: 'hawkbit.example',
          headers: {
            ':path': path,
            ':method': method,
            ':authority': 'hawkbit.example',
            ':scheme': 'https',
            'x-request-id': 'req-0001',
            ...Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value])),
          },
        },
      },
    },
  };
}

/** The same request with `encode_raw_headers`: header_map entries carrying raw_value bytes. */
export function envoyRawHeaderRequest(path: string, headers: [string, string][], extra: { source?: string } = {}): CheckRequestMessage {
  return {
    attributes: {
      source: { address: { socket_address: { address: extra.source ?? '192.0.2.10', port_value: 51234 } }, certificate: '' },
      request: {
        http: {
          method: 'GET',
          path,
          header_map: {
            headers: [[':path', path], ['x-request-id', 'req-raw'], ...headers].map(([key, value]) => ({ key, raw_value: Buffer.from(value, 'latin1') })),
          },
        },
      },
    },
  };
}

/** Header values an OK response sets, by lower-case name. */
export function setHeaders(response: CheckResponseMessage): Record<string, string> {
  return Object.fromEntries((response.ok_response?.headers ?? []).map((option) => [option.header.key.toLowerCase(), option.header.value]));
}

/** gRPC code and HTTP status of a response, for compact assertions. */
export function outcome(response: CheckResponseMessage): { grpc: number; http: number } {
  const grpcCode = response.status?.code ?? 0;
  const http = grpcCode === 0 ? 200 : Number(response.denied_response?.status?.code ?? 403);
  return { grpc: grpcCode, http };
}
