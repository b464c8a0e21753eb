import { expect } from 'chai';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { PROTO_DIR } from '../src/envoy/proto.js';
import { envoyRequest, startService, type RunningService } from './helpers/service.js';

// Envoy's real v3 API protos, as shipped by @grpc/grpc-js-xds under deps/.
const require = createRequire(import.meta.url);
const XDS_DEPS = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const ENVOY_INCLUDES = ['envoy-api', 'googleapis', 'protoc-gen-validate', 'xds'].map((dir) => join(XDS_DEPS, dir));
const EXTERNAL_AUTH = 'envoy/service/auth/v3/external_auth.proto';

function loadRoot(includeDirs: string[]): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    for (const dir of includeDirs) {
      const candidate = join(dir, target);
      try {
        require('node:fs').accessSync(candidate);
        return candidate;
      } catch {
        // try the next include directory
      }
    }
    return target;
  };
  root.loadSync(EXTERNAL_AUTH, { keepCase: true });
  root.resolveAll();
  return root;
}

const TOKEN = '4a7c1e9b2d3f40a6b8c0d2e4f6a8b0c2';

/** A CheckRequest that sets every field this service reads, in both header forms. */
const FULL_REQUEST = {
  attributes: {
    source: {
      address: { socket_address: { address: '2001:db8::7', port_value: 40123 } },
      principal: 'CN=device-01,O=Example',
      certificate: '-----BEGIN%20CERTIFICATE-----%0AMIIB%2Babc%3D%0A-----END%20CERTIFICATE-----%0A',
    },
    destination: { address: { socket_address: { address: '10.0.0.1', port_value: 8443 } } },
    request: {
      time: { seconds: 1764800000, nanos: 5 },
      http: {
        id: '12345',
        method: 'POST',
        headers: { ':path': '/T/controller/v1/d', authorization: `TargetToken ${TOKEN}`, 'x-request-id': 'abc' },
        path: '/T/controller/v1/d/deploymentBase/1/feedback?x=1',
        host: 'hawkbit.example',
        scheme: 'https',
        size: '42',
        protocol: 'HTTP/2',
      },
    },
    context_extensions: { route: 'ddi' },
    tls_session: { sni: 'hawkbit.example' },
  },
};

const RAW_HEADER_REQUEST = {
  attributes: {
    request: {
      http: {
        path: '/T/controller/v1/d',
        header_map: { headers: [{ key: 'authorization', raw_value: Buffer.from(`TargetToken ${TOKEN}`) }, { key: 'x-a', value: 'v', raw_value: Buffer.from([0xff, 0x00]) }] },
      },
    },
  },
};

const FULL_RESPONSE = {
  status: { code: 0, message: '' },
  ok_response: {
    headers: [{ header: { key: 'x-ddi-controller-id', value: 'd' }, append: { value: false }, append_action: 2 }],
    headers_to_remove: ['x-controller-id', 'authorization'],
  },
  dynamic_metadata: { fields: { tenant: { stringValue: 'T' }, controllerId: { stringValue: 'd' }, authMethod: { stringValue: 'target-token' } } },
};

const DENIED_RESPONSE = {
  status: { code: 16 },
  denied_response: { status: { code: 401 }, headers: [{ header: { key: 'www-authenticate', value: 'TargetToken' }, append: { value: false } }], body: '' },
};

function crossCheck(from: protobuf.Root, to: protobuf.Root, typeName: string, message: object): void {
  const encoder = from.lookupType(typeName);
  const decoder = to.lookupType(typeName);
  const bytes = encoder.encode(encoder.fromObject(message)).finish();
  const decoded = decoder.toObject(decoder.decode(bytes), { longs: String, bytes: Buffer, defaults: false });
  const expected = encoder.toObject(encoder.decode(bytes), { longs: String, bytes: Buffer, defaults: false });
  expect(decoded, typeName).to.deep.equal(expected);
  // Re-encoding on the other side yields the same bytes: no field was lost or renumbered.
  expect(Buffer.from(decoder.encode(decoder.fromObject(decoded)).finish()).equals(Buffer.from(bytes)), `${typeName} bytes`).to.equal(true);
}

describe('wire compatibility with Envoy API protos', () => {
  const ours = loadRoot([PROTO_DIR]);
  const envoy = loadRoot(ENVOY_INCLUDES);

  for (const [direction, from, to] of [['ours to Envoy', ours, envoy], ['Envoy to ours', envoy, ours]] as const) {
    it(`round-trips a full CheckRequest ${direction}`, () => {
      crossCheck(from, to, 'envoy.service.auth.v3.CheckRequest', FULL_REQUEST);
    });

    it(`round-trips a header_map CheckRequest ${direction}`, () => {
      crossCheck(from, to, 'envoy.service.auth.v3.CheckRequest', RAW_HEADER_REQUEST);
    });

    it(`round-trips an OK CheckResponse ${direction}`, () => {
      crossCheck(from, to, 'envoy.service.auth.v3.CheckResponse', FULL_RESPONSE);
    });

    it(`round-trips a denied CheckResponse ${direction}`, () => {
      crossCheck(from, to, 'envoy.service.auth.v3.CheckResponse', DENIED_RESPONSE);
    });
  }

  it('keeps the field numbers of every message it defines', () => {
    const types = [
      'envoy.service.auth.v3.CheckRequest',
      'envoy.service.auth.v3.CheckResponse',
      'envoy.service.auth.v3.OkHttpResponse',
      'envoy.service.auth.v3.DeniedHttpResponse',
      'envoy.service.auth.v3.AttributeContext',
      'envoy.service.auth.v3.AttributeContext.Peer',
      'envoy.service.auth.v3.AttributeContext.Request',
      'envoy.service.auth.v3.AttributeContext.HttpRequest',
      'envoy.config.core.v3.HeaderValueOption',
      'envoy.config.core.v3.HeaderValue',
      'envoy.config.core.v3.SocketAddress',
    ];
    for (const name of types) {
      const mine = ours.lookupType(name);
      const theirs = envoy.lookupType(name);
      for (const field of mine.fieldsArray) {
        // CheckResponse.error_response (field 5) is newer than the Envoy API copy in @grpc/grpc-js-xds 1.14.
        if (name === 'envoy.service.auth.v3.CheckResponse' && field.name === 'error_response') {
          expect(field.id).to.equal(5);
          continue;
        }
        const other = theirs.fields[field.name];
        expect(other, `${name}.${field.name} exists in Envoy's API`).not.to.equal(undefined);
        expect(other.id, `${name}.${field.name} number`).to.equal(field.id);
        expect(other.type, `${name}.${field.name} type`).to.equal(field.type);
        expect(other.repeated, `${name}.${field.name} repeated`).to.equal(field.repeated);
      }
    }
  });

  describe('over a gRPC channel with a client built from Envoy protos', () => {
    let service: RunningService;
    let client: grpc.Client & { Check: Function };

    before(async () => {
      service = await startService(`
tenants:
  T:
    config: { authentication.targettoken.enabled: true }
    targets:
      d: { securityToken: "${TOKEN}" }
`);
      const definition = protoLoader.loadSync(EXTERNAL_AUTH, { keepCase: true, longs: String, enums: String, defaults: false, oneofs: true, includeDirs: ENVOY_INCLUDES });
      const api = grpc.loadPackageDefinition(definition) as any;
      client = new api.envoy.service.auth.v3.Authorization(service.handle.grpcAddress, grpc.credentials.createInsecure());
    });

    after(async () => {
      client.close();
      await service.stop();
    });

    const call = (request: object): Promise<any> =>
      new Promise((resolve, reject) => client.Check(request, (error: Error | null, response: unknown) => (error ? reject(error) : resolve(response))));

    it('decodes an allow with Envoy types', async () => {
      const response = await call(envoyRequest('/T/controller/v1/d', { authorization: `TargetToken ${TOKEN}` }));
      expect(response.http_response).to.equal('ok_response');
      expect(response.status.code ?? 0).to.equal(0);
      const option = response.ok_response.headers.find((entry: any) => entry.header.key === 'x-ddi-controller-id');
      expect(option.header.value).to.equal('d');
      expect(option.append.value).to.equal(false);
      expect(option.append_action).to.equal('OVERWRITE_IF_EXISTS_OR_ADD');
      expect(response.dynamic_metadata.fields.authMethod.stringValue).to.equal('target-token');
    });

    it('decodes a deny with Envoy types', async () => {
      const response = await call(envoyRequest('/T/controller/v1/d', { authorization: 'TargetToken nope' }));
      expect(response.http_response).to.equal('denied_response');
      expect(response.status.code).to.equal(16);
      expect(response.denied_response.status.code).to.equal('Unauthorized');
    });
  });
});
