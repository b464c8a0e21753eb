import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** The repository's `proto/` folder, from both `src/` and the compiled `dist/src/`. */
export const PROTO_DIR = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../../proto/' : '../../proto/', import.meta.url));

/** proto-loader options shared by the server, the `check` command and the tests. */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: Number,
  defaults: false,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

let cached: grpc.GrpcObject | undefined;

/** Loads the ext_authz and health protos once per process. */
export function loadProtos(): grpc.GrpcObject {
  if (!cached) {
    const definition = protoLoader.loadSync(
      ['envoy/service/auth/v3/external_auth.proto', 'grpc/health/v1/health.proto'],
      LOADER_OPTIONS,
    );
    cached = grpc.loadPackageDefinition(definition);
  }
  return cached;
}

type ServiceClass = grpc.ServiceClientConstructor;

function lookup(path: string): ServiceClass {
  let node: unknown = loadProtos();
  for (const part of path.split('.')) {
    node = (node as Record<string, unknown>)[part];
  }
  return node as ServiceClass;
}

export const AUTHORIZATION_SERVICE_NAME = 'envoy.service.auth.v3.Authorization';
export const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';

export function authorizationService(): ServiceClass {
  return lookup(AUTHORIZATION_SERVICE_NAME);
}

export function healthService(): ServiceClass {
  return lookup(HEALTH_SERVICE_NAME);
}
