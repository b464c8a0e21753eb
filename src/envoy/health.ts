import * as grpc from '@grpc/grpc-js';

export type ServingStatus = 'SERVING' | 'NOT_SERVING';

interface HealthRequest {
  service?: string;
}

/**
 * grpc.health.v1.Health for a fixed set of service names. Envoy's gRPC health
 * check calls `Check` with an empty name by default.
 */
export class HealthService {
  readonly #statuses = new Map<string, ServingStatus>();
  readonly #watchers = new Set<{ service: string; call: grpc.ServerWritableStream<HealthRequest, unknown> }>();

  constructor(services: readonly string[]) {
    for (const service of services) {
      this.#statuses.set(service, 'NOT_SERVING');
    }
  }

  setAll(status: ServingStatus): void {
    for (const service of this.#statuses.keys()) {
      this.#statuses.set(service, status);
    }
    for (const watcher of this.#watchers) {
      watcher.call.write({ status: this.#statuses.get(watcher.service) ?? 'SERVICE_UNKNOWN' });
    }
  }

  status(service = ''): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  /** Ends every Watch stream, so a graceful shutdown does not wait for them. */
  endWatches(): void {
    for (const watcher of this.#watchers) {
      watcher.call.end();
    }
    this.#watchers.clear();
  }

  handlers(): grpc.UntypedServiceImplementation {
    return {
      Check: (call: grpc.ServerUnaryCall<HealthRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const status = this.#statuses.get(call.request.service ?? '');
        if (!status) {
          callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
          return;
        }
        callback(null, { status });
      },
      List: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const statuses: Record<string, { status: ServingStatus }> = {};
        for (const [service, status] of this.#statuses) {
          statuses[service] = { status };
        }
        callback(null, { statuses });
      },
      Watch: (call: grpc.ServerWritableStream<HealthRequest, unknown>) => {
        const service = call.request.service ?? '';
        const watcher = { service, call };
        this.#watchers.add(watcher);
        call.write({ status: this.#statuses.get(service) ?? 'SERVICE_UNKNOWN' });
        call.on('cancelled', () => this.#watchers.delete(watcher));
      },
    };
  }
}
