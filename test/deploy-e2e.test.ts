/**
 * End to end on loopback: device → TLS proxy that behaves like Envoy with
 * envoy/envoy.yaml → hawkbit-ext-authz (in-process, configured from
 * envoy/ext-authz.yaml) → a hawkBit stand-in that applies hawkBit's
 * reverse-proxy header authentication. Certificates are made with openssl
 * at test time.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import yaml from 'js-yaml';
import { parseConfig } from '../src/config/load.js';
import type { ServiceConfig } from '../src/config/schema.js';
import { createService } from '../src/service.js';
import { EnvoyLikeProxy, routesFromBootstrap, urlEncodePem } from './helpers/envoy-proxy.js';
import { HawkbitStub } from './helpers/hawkbit-stub.js';
import { TestPki, type TestCertificate } from './helpers/pki.js';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), import.meta.url.includes('/dist/') ? '../..' : '..');
const BOOTSTRAP_FILE = join(REPO_ROOT, 'envoy/envoy.yaml');
const SERVICE_CONFIG_FILE = join(REPO_ROOT, 'envoy/ext-authz.yaml');

const AUTHORITY = 'edge-authority-5d41402abc4b2a76';
const TARGET_TOKEN = '0c1d2e3f405162738495a6b7c8d9eafb';
const GATEWAY_KEY = 'gateway-key-4f9b2c1d8e7a6b5c';
const ENV: NodeJS.ProcessEnv = {
  HAWKBIT_AUTHORITY: AUTHORITY,
  GATEWAY_KEY_DEFAULT: GATEWAY_KEY,
  TOKEN_DIGEST_KEY: 'digest-key-for-the-e2e-test',
  DEVICE_01_TOKEN: TARGET_TOKEN,
};

interface DeviceResponse {
  status: number;
  body: string;
}

interface DeviceRequest {
  path: string;
  method?: string;
  /** Header lines in order; a name may repeat. */
  headers?: Array<[string, string]>;
  certificate?: TestCertificate;
  body?: string;
}

describe('deploy: end to end through an Envoy-like proxy', function () {
  this.timeout(60_000);

  let pki: TestPki;
  let root: TestCertificate;
  let deviceCertificate: TestCertificate;
  let foreignDevice: TestCertificate;
  let stub: HawkbitStub;
  let service: Awaited<ReturnType<typeof createService>>;
  let proxy: EnvoyLikeProxy;
  let bootstrap: Record<string, unknown>;

  function send(options: DeviceRequest, port = proxy.port): Promise<DeviceResponse> {
    return new Promise((resolve, reject) => {
      // With raw header lines Node adds no Host header, so it comes first here.
      const lines: string[] = ['Host', `localhost:${port}`];
      for (const [name, value] of options.headers ?? []) {
        lines.push(name, value);
      }
      const request = httpsRequest(
        {
          host: '127.0.0.1',
          port,
          method: options.method ?? 'GET',
          path: options.path,
          servername: 'localhost',
          ca: root.pem,
          cert: options.certificate ? readFileSync(options.certificate.certPath) : undefined,
          key: options.certificate ? readFileSync(options.certificate.keyPath) : undefined,
          agent: false,
          headers: lines,
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        },
      );
      request.on('error', reject);
      request.end(options.body);
    });
  }

  function extAuthzSetting<T>(key: string): T {
    const walk = (value: unknown): unknown => {
      if (Array.isArray(value)) {
        for (const item of value) {
          const found = walk(item);
          if (found !== undefined) {
            return found;
          }
        }
      } else if (value && typeof value === 'object') {
        const record = value as Record<string, unknown>;
        if (record['@type'] === 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz') {
          return record[key];
        }
        return walk(Object.values(record));
      }
      return undefined;
    };
    return walk(bootstrap) as T;
  }

  before(async function () {
    pki = TestPki.create();
    root = pki.rootCa();
    const intermediate = pki.intermediateCa(root);
    deviceCertificate = pki.device(intermediate, '/O=Example IoT/CN=device-cert-01');
    const foreignRoot = pki.rootCa('/O=Somebody Else/CN=Foreign Root CA');
    foreignDevice = pki.device(foreignRoot, '/CN=device-cert-01');
    const server = pki.server(root);

    const config: ServiceConfig = parseConfig(readFileSync(SERVICE_CONFIG_FILE, 'utf8'), SERVICE_CONFIG_FILE, { env: ENV });
    config.grpc.address = '127.0.0.1:0';
    config.http.address = '127.0.0.1:0';
    config.log.level = 'silent';
    config.tenants.DEFAULT.config['authentication.header.authority'] = pki.opensslIssuerHash(deviceCertificate);
    service = await createService(config);

    stub = new HawkbitStub({
      controllerIdHeader: config.upstream.hawkbitHeaderAuth.controllerIdHeader,
      authorityHeader: config.upstream.hawkbitHeaderAuth.authorityHeader,
      trustedAuthorities: [AUTHORITY],
      trustedIPs: ['127.0.0.1'],
    });
    await stub.start();

    bootstrap = yaml.load(readFileSync(BOOTSTRAP_FILE, 'utf8')) as Record<string, unknown>;
    const grpcService = extAuthzSetting<{ timeout: string }>('grpc_service');
    const statusOnError = extAuthzSetting<{ code: string }>('status_on_error');
    // The proxy returns the status that envoy.yaml configures for failed Checks.
    expect(statusOnError.code).to.equal('ServiceUnavailable');
    proxy = new EnvoyLikeProxy({
      authzAddress: service.grpcAddress,
      upstreamPort: stub.port,
      serverCert: server.pem,
      serverKey: readFileSync(server.keyPath, 'utf8'),
      deviceCa: [root.pem, intermediate.pem].join(''),
      routes: routesFromBootstrap(bootstrap),
      checkTimeoutMs: Number.parseFloat(grpcService.timeout) * 1000,
      statusOnError: 503,
    });
    await proxy.start();
  });

  after(async function () {
    await proxy?.stop();
    await stub?.stop();
    await service?.stop({ drainDelayMs: 0, timeoutMs: 2000 });
    pki?.cleanup();
  });

  beforeEach(function () {
    stub.reset();
    proxy.exchanges.length = 0;
  });

  it('allows a target token', async function () {
    const response = await send({ path: '/DEFAULT/controller/v1/device-01', headers: [['Authorization', `TargetToken ${TARGET_TOKEN}`]] });
    expect(response.status).to.equal(200);
    expect(stub.received).to.have.length(1);
    const received = stub.received[0];
    expect(received.authenticatedControllerId, 'hawkBit accepts the forwarded headers').to.equal('device-01');
    expect(received.headers['x-ddi-tenant']).to.equal('DEFAULT');
    expect(received.headers['x-ddi-controller-id']).to.equal('device-01');
    expect(received.headers['x-ddi-auth-method']).to.equal('target-token');
    expect(received.headers['x-controller-id']).to.equal('device-01');
    expect(received.headers['x-authority']).to.equal(AUTHORITY);
    expect(received.headers.authorization, 'the token does not reach hawkBit').to.equal(undefined);
  });

  it('allows a gateway token for any device', async function () {
    const response = await send({ path: '/DEFAULT/controller/v1/gateway-child-7/configData', method: 'PUT', headers: [['Authorization', `GatewayToken ${GATEWAY_KEY}`], ['Content-Type', 'application/json']], body: '{"data":{}}' });
    expect(response.status).to.equal(200);
    const received = stub.received[0];
    expect(received.method).to.equal('PUT');
    expect(received.body).to.equal('{"data":{}}');
    expect(received.authenticatedControllerId).to.equal('gateway-child-7');
    expect(received.headers['x-ddi-auth-method']).to.equal('gateway-token');
  });

  it('allows a client certificate', async function () {
    const response = await send({ path: '/DEFAULT/controller/v1/device-cert-01', certificate: deviceCertificate });
    expect(response.status).to.equal(200);
    const received = stub.received[0];
    expect(received.authenticatedControllerId).to.equal('device-cert-01');
    expect(received.headers['x-ddi-auth-method']).to.equal('certificate');
    expect(received.headers['x-authority']).to.equal(AUTHORITY);
    const xfcc = received.headers['x-forwarded-client-cert'];
    const digest = createHash('sha256').update(Buffer.from(deviceCertificate.pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64')).digest('hex');
    expect(xfcc).to.contain(`Hash=${digest}`);
    const checkRequest = proxy.exchanges[0].checkRequest as { attributes: { source: { certificate: string } } };
    expect(checkRequest.attributes.source.certificate).to.equal(urlEncodePem(deviceCertificate.pem));
  });

  it('denies a certificate for another controller id', async function () {
    const response = await send({ path: '/DEFAULT/controller/v1/device-02', certificate: deviceCertificate });
    expect(response.status, 'a credential that does not fit is a 401').to.equal(401);
    expect(stub.received).to.have.length(0);
  });

  it('replaces forged identity headers', async function () {
    const response = await send({
      path: '/DEFAULT/controller/v1/device-01',
      headers: [
        ['Authorization', `TargetToken ${TARGET_TOKEN}`],
        ['x-ddi-controller-id', 'device-99'],
        ['X-DDI-Tenant', 'OTHER'],
        ['x-ddi-auth-method', 'certificate'],
        ['X-Controller-Id', 'device-99'],
        ['X-Controller-Id', 'device-98'],
        ['X-Authority', 'forged-authority'],
        ['X-Authority-0', 'forged-authority'],
        ['X-Forwarded-Client-Cert', 'Hash=00;Subject="CN=device-99"'],
      ],
    });
    expect(response.status).to.equal(200);
    const received = stub.received[0];
    const values = (name: string): string[] => received.rawHeaders.filter(([header]) => header === name).map(([, value]) => value);
    expect(values('x-ddi-controller-id')).to.deep.equal(['device-01']);
    expect(values('x-ddi-tenant')).to.deep.equal(['DEFAULT']);
    expect(values('x-ddi-auth-method')).to.deep.equal(['target-token']);
    expect(values('x-controller-id')).to.deep.equal(['device-01']);
    expect(values('x-authority')).to.deep.equal([AUTHORITY]);
    expect(values('x-forwarded-client-cert'), 'no client certificate, so no XFCC').to.deep.equal([]);
    expect(received.authenticatedControllerId).to.equal('device-01');
  });

  it('rejects an untrusted CA in the handshake', async function () {
    const rejectedBefore = proxy.rejectedHandshakes.length;
    let failure: unknown;
    try {
      await send({ path: '/DEFAULT/controller/v1/device-cert-01', certificate: foreignDevice });
    } catch (error) {
      failure = error;
    }
    expect(failure, 'the connection fails before any HTTP answer').to.be.instanceOf(Error);
    expect(proxy.rejectedHandshakes.length).to.equal(rejectedBefore + 1);
    expect(proxy.exchanges).to.have.length(0);
    expect(stub.received).to.have.length(0);
  });

  it('denies a wrong token with 401', async function () {
    const response = await send({ path: '/DEFAULT/controller/v1/device-01', headers: [['Authorization', 'TargetToken ffffffffffffffffffffffffffffffff']] });
    expect(response.status).to.equal(401);
    expect(proxy.exchanges[0].checkResponse).to.not.equal(undefined);
    expect(stub.received).to.have.length(0);
  });

  it('denies a request without credentials', async function () {
    const response = await send({ path: '/DEFAULT/controller/v1/device-01' });
    expect(response.status).to.equal(401);
    expect(stub.received).to.have.length(0);
  });

  it('checks an unknown path and denies it', async function () {
    const response = await send({ path: '/favicon.ico', headers: [['Authorization', `TargetToken ${TARGET_TOKEN}`]] });
    expect(response.status).to.equal(403);
    expect(proxy.exchanges[0].checkRequest).to.not.equal(undefined);
    expect(stub.received).to.have.length(0);
  });

  it('rejects an escaped slash before the check', async function () {
    const response = await send({ path: '/DEFAULT/controller/v1/device%2F01', headers: [['Authorization', `TargetToken ${TARGET_TOKEN}`]] });
    expect(response.status).to.equal(400);
    expect(proxy.exchanges[0].checkRequest).to.equal(undefined);
    expect(stub.received).to.have.length(0);
  });

  it('checks the normalized path', async function () {
    const response = await send({ path: '/rest/..//DEFAULT/./controller/v1/device-01', headers: [['Authorization', `TargetToken ${TARGET_TOKEN}`]] });
    expect(response.status).to.equal(200);
    expect(proxy.exchanges[0].route).to.equal('ddi');
    expect(stub.received[0].path).to.equal('/DEFAULT/controller/v1/device-01');
  });

  it('passes management paths without a check', async function () {
    const response = await send({ path: '/rest/v1/targets', headers: [['Authorization', 'Basic YWRtaW46YWRtaW4='], ['X-Controller-Id', 'device-01'], ['X-Authority', AUTHORITY], ['X-Authority-1', AUTHORITY]] });
    expect(response.status).to.equal(200);
    expect(proxy.exchanges[0].checkRequest).to.equal(undefined);
    const received = stub.received[0];
    expect(received.headers.authorization, 'hawkBit authenticates its own users').to.equal('Basic YWRtaW46YWRtaW4=');
    expect(received.headers['x-controller-id']).to.equal(undefined);
    expect(received.headers['x-authority']).to.equal(undefined);
    expect(received.headers['x-authority-1']).to.equal(undefined);
  });

  it('sends the Check as Envoy does', async function () {
    await send({ path: '/DEFAULT/controller/v1/device-01?actionHistory=2', headers: [['Authorization', `TargetToken ${TARGET_TOKEN}`], ['Accept', 'application/hal+json'], ['Accept', 'application/json']] });
    const attributes = (proxy.exchanges[0].checkRequest as { attributes: Record<string, Record<string, unknown>> }).attributes;
    const http = (attributes.request.http ?? {}) as Record<string, unknown>;
    const headers = http.headers as Record<string, string>;
    expect(http.path).to.equal('/DEFAULT/controller/v1/device-01?actionHistory=2');
    expect(http.scheme).to.equal('https');
    expect(http.protocol).to.equal('HTTP/1.1');
    expect(headers[':path']).to.equal(http.path);
    expect(headers[':method']).to.equal('GET');
    expect(headers[':authority']).to.equal(http.host);
    expect(headers.accept).to.equal('application/hal+json,application/json');
    expect(headers['x-request-id']).to.match(/^[0-9a-f-]{36}$/);
    expect(Object.keys(headers).every((name) => name === name.toLowerCase())).to.equal(true);
    expect(get(attributes, 'source', 'address', 'socket_address', 'address')).to.equal('127.0.0.1');
  });

  it('fails closed when the service is unreachable', async function () {
    const server = pki.server(root);
    const unreachable = new EnvoyLikeProxy({
      // Port 1 on loopback: nothing listens there, so the Check RPC fails.
      authzAddress: '127.0.0.1:1',
      upstreamPort: stub.port,
      serverCert: server.pem,
      serverKey: readFileSync(server.keyPath, 'utf8'),
      deviceCa: root.pem,
      routes: routesFromBootstrap(bootstrap),
      checkTimeoutMs: 1000,
      statusOnError: 503,
    });
    await unreachable.start();
    try {
      const response = await send({ path: '/DEFAULT/controller/v1/device-01', headers: [['Authorization', `TargetToken ${TARGET_TOKEN}`]] }, unreachable.port);
      expect(response.status).to.equal(503);
      expect(unreachable.exchanges[0].checkError).to.not.equal(undefined);
      expect(stub.received).to.have.length(0);
    } finally {
      await unreachable.stop();
    }
  });
});

function get(value: unknown, ...keys: string[]): unknown {
  let current = value;
  for (const key of keys) {
    current = current && typeof current === 'object' ? (current as Record<string, unknown>)[key] : undefined;
  }
  return current;
}
