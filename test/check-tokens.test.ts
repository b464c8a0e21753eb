import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { envoyRawHeaderRequest, envoyRequest, outcome, setHeaders, startService, type RunningService } from './helpers/service.js';

const TOKEN = '4a7c1e9b2d3f40a6b8c0d2e4f6a8b0c2';
const OTHER_TOKEN = '0b1c2d3e4f5061728394a5b6c7d8e9f0';
const GATEWAY_KEY = 'gw-9f8e7d6c5b4a39281706f5e4d3c2b1a0';

const CONFIG = `
store: { type: memory }
tenants:
  DEFAULT:
    config:
      authentication.targettoken.enabled: true
      authentication.gatewaytoken.enabled: true
      authentication.gatewaytoken.key: "${GATEWAY_KEY}"
    targets:
      device-01: { securityToken: "${TOKEN}" }
      device-02: { securityToken: "${OTHER_TOKEN}" }
      hashed-03: { securityTokenSha256: "${createHash('sha256').update(OTHER_TOKEN).digest('hex')}" }
      no-token: {}
      "gerät-ü": { securityToken: "${TOKEN}" }
  tokens-off:
    config:
      authentication.targettoken.enabled: false
      authentication.gatewaytoken.enabled: false
      authentication.gatewaytoken.key: "${GATEWAY_KEY}"
    targets:
      device-01: { securityToken: "${TOKEN}" }
  empty-key:
    config:
      authentication.gatewaytoken.enabled: true
      authentication.gatewaytoken.key: ""
`;

describe('Check with target and gateway tokens', () => {
  let service: RunningService;

  before(async () => {
    service = await startService(CONFIG);
  });

  after(async () => {
    await service.stop();
  });

  const poll = (controllerId: string, tenant = 'DEFAULT') => `/${tenant}/controller/v1/${controllerId}`;
  const lastDecision = () => service.log.records.filter((record) => record.msg === 'allow' || record.msg === 'deny').at(-1) ?? {};

  it('allows a target token that matches the device', async () => {
    const response = await service.check(envoyRequest(poll('device-01'), { authorization: `TargetToken ${TOKEN}` }));
    expect(outcome(response)).to.deep.equal({ grpc: 0, http: 200 });
    const headers = setHeaders(response);
    expect(headers['x-ddi-tenant']).to.equal('DEFAULT');
    expect(headers['x-ddi-controller-id']).to.equal('device-01');
    expect(headers['x-ddi-auth-method']).to.equal('target-token');
  });

  it('sets identity headers with append false', async () => {
    const response = await service.check(envoyRequest(poll('device-01'), { authorization: `TargetToken ${TOKEN}` }));
    for (const option of response.ok_response?.headers ?? []) {
      expect(option.append, option.header.key).to.deep.equal({ value: false });
    }
  });

  it('puts the identity into dynamic metadata', async () => {
    const response = await service.check(envoyRequest(poll('device-01'), { authorization: `TargetToken ${TOKEN}` }));
    const fields = response.dynamic_metadata?.fields ?? {};
    expect(fields.tenant?.stringValue).to.equal('DEFAULT');
    expect(fields.controllerId?.stringValue).to.equal('device-01');
    expect(fields.authMethod?.stringValue).to.equal('target-token');
  });

  it('allows sub-paths, a trailing slash and a query string', async () => {
    const paths = [
      `${poll('device-01')}/deploymentBase/12?c=-2129030598`,
      `${poll('device-01')}/deploymentBase/12/feedback`,
      `${poll('device-01')}/configData`,
      `${poll('device-01')}/installedBase/3`,
      `${poll('device-01')}/cancelAction/5/feedback`,
      `${poll('device-01')}/confirmationBase/activateAutoConfirm`,
      `${poll('device-01')}/softwaremodules/7/artifacts/image.swu.MD5SUM`,
      `${poll('device-01')}/`,
    ];
    for (const path of paths) {
      const response = await service.check(envoyRequest(path, { authorization: `TargetToken ${TOKEN}` }));
      expect(outcome(response).grpc, path).to.equal(0);
    }
  });

  it('matches the tenant case-insensitively and reports it as configured', async () => {
    const response = await service.check(envoyRequest(poll('device-01', 'default'), { authorization: `TargetToken ${TOKEN}` }));
    expect(outcome(response).grpc).to.equal(0);
    expect(setHeaders(response)['x-ddi-tenant']).to.equal('DEFAULT');
  });

  it('compares controller ids exactly', async () => {
    const response = await service.check(envoyRequest(poll('DEVICE-01'), { authorization: `TargetToken ${TOKEN}` }));
    expect(outcome(response)).to.deep.equal({ grpc: 16, http: 401 });
    expect(lastDecision().reason).to.equal('unknown_target');
  });

  it('accepts the scheme in any case and several spaces', async () => {
    for (const value of [`targettoken ${TOKEN}`, `TARGETTOKEN   ${TOKEN}`, `TargetToken ${TOKEN}  `]) {
      const response = await service.check(envoyRequest(poll('device-01'), { authorization: value }));
      expect(outcome(response).grpc, value).to.equal(0);
    }
  });

  it('allows a token stored as a SHA-256 digest', async () => {
    const response = await service.check(envoyRequest(poll('hashed-03'), { authorization: `TargetToken ${OTHER_TOKEN}` }));
    expect(outcome(response).grpc).to.equal(0);
  });

  it('denies another device token with 401 and code 16', async () => {
    const response = await service.check(envoyRequest(poll('device-01'), { authorization: `TargetToken ${OTHER_TOKEN}` }));
    expect(outcome(response)).to.deep.equal({ grpc: 16, http: 401 });
    expect(response.denied_response?.body ?? '').to.equal('');
    expect(lastDecision().reason).to.equal('token_mismatch');
  });

  const denials: [string, string, Record<string, string>, string][] = [
    ['an unknown target', poll('device-99'), { authorization: `TargetToken ${TOKEN}` }, 'unknown_target'],
    ['a target without token', poll('no-token'), { authorization: `TargetToken ${TOKEN}` }, 'token_missing'],
    ['an unknown tenant', poll('device-01', 'OTHER'), { authorization: `TargetToken ${TOKEN}` }, 'unknown_tenant'],
    ['no Authorization header', poll('device-01'), {}, 'no_credentials'],
    ['an unknown scheme', poll('device-01'), { authorization: `Bearer ${TOKEN}` }, 'scheme_unsupported'],
    ['a scheme without credential', poll('device-01'), { authorization: 'TargetToken' }, 'authorization_malformed'],
    ['an empty credential', poll('device-01'), { authorization: 'TargetToken ' }, 'authorization_malformed'],
    ['a credential that is not token68', poll('device-01'), { authorization: `TargetToken ${TOKEN} extra` }, 'authorization_malformed'],
    ['two joined credentials', poll('device-01'), { authorization: `TargetToken ${TOKEN},TargetToken ${TOKEN}` }, 'authorization_repeated'],
    ['a disabled target token method', poll('device-01', 'tokens-off'), { authorization: `TargetToken ${TOKEN}` }, 'method_disabled'],
    ['a disabled gateway token method', poll('device-01', 'tokens-off'), { authorization: `GatewayToken ${GATEWAY_KEY}` }, 'method_disabled'],
    ['an empty gateway key', poll('device-01', 'empty-key'), { authorization: 'GatewayToken x' }, 'token_missing'],
    ['a wrong gateway key', poll('device-01'), { authorization: `GatewayToken ${GATEWAY_KEY}x` }, 'token_mismatch'],
    ['a gateway key sent as target token', poll('device-01'), { authorization: `TargetToken ${GATEWAY_KEY}` }, 'token_mismatch'],
  ];
  for (const [condition, path, headers, reason] of denials) {
    it(`denies ${condition} with 401`, async () => {
      const response = await service.check(envoyRequest(path, headers));
      expect(outcome(response)).to.deep.equal({ grpc: 16, http: 401 });
      expect(lastDecision().reason).to.equal(reason);
      expect(lastDecision().result).to.equal('deny');
    });
  }

  it('allows a gateway token for any controller id of the tenant', async () => {
    for (const controllerId of ['device-01', 'never-registered']) {
      const response = await service.check(envoyRequest(poll(controllerId), { authorization: `GatewayToken ${GATEWAY_KEY}` }));
      expect(outcome(response).grpc, controllerId).to.equal(0);
      expect(setHeaders(response)['x-ddi-auth-method']).to.equal('gateway-token');
      expect(setHeaders(response)['x-ddi-controller-id']).to.equal(controllerId);
    }
  });

  it('reads header_map entries with raw values', async () => {
    const allowed = await service.check(envoyRawHeaderRequest(poll('device-01'), [['authorization', `TargetToken ${TOKEN}`]]));
    expect(outcome(allowed).grpc).to.equal(0);
    const denied = await service.check(envoyRawHeaderRequest(poll('device-01'), [['authorization', `TargetToken ${OTHER_TOKEN}`]]));
    expect(outcome(denied).grpc).to.equal(16);
  });

  it('denies two Authorization entries in header_map', async () => {
    const response = await service.check(
      envoyRawHeaderRequest(poll('device-01'), [
        ['authorization', `TargetToken ${TOKEN}`],
        ['authorization', `TargetToken ${TOKEN}`],
      ]),
    );
    expect(outcome(response)).to.deep.equal({ grpc: 16, http: 401 });
    expect(lastDecision().reason).to.equal('authorization_repeated');
  });

  it('percent-encodes a controller id that is not printable ASCII', async () => {
    const response = await service.check(envoyRequest(`/DEFAULT/controller/v1/${encodeURIComponent('gerät-ü')}`, { authorization: `TargetToken ${TOKEN}` }));
    expect(outcome(response).grpc).to.equal(0);
    expect(setHeaders(response)['x-ddi-controller-id']).to.equal(encodeURIComponent('gerät-ü'));
    expect(response.dynamic_metadata?.fields.controllerId.stringValue).to.equal('gerät-ü');
  });

  it('logs one decision line with the request id and no token', async () => {
    const before = service.log.lines.length;
    await service.check(envoyRequest(poll('device-01'), { authorization: `TargetToken ${TOKEN}` }));
    await service.check(envoyRequest(poll('device-01'), { authorization: `TargetToken ${OTHER_TOKEN}` }));
    await service.check(envoyRequest(poll('device-01'), { authorization: `GatewayToken ${GATEWAY_KEY}` }));
    const lines = service.log.lines.slice(before);
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records.map((record) => record.msg)).to.deep.equal(['allow', 'deny', 'allow']);
    expect(records.map((record) => record.level)).to.deep.equal(['info', 'warn', 'info']);
    expect(records[1]).to.include({ requestId: 'req-0001', tenant: 'DEFAULT', controllerId: 'device-01', method: 'target-token', result: 'deny', reason: 'token_mismatch' });
    expect(records[0].durationMs).to.be.a('number');
    for (const secret of [TOKEN, OTHER_TOKEN, GATEWAY_KEY]) {
      expect(service.log.text).not.to.include(secret);
    }
  });
});
