import { expect } from 'chai';
import { parseDdiPath } from '../src/ddi/path.js';
import { envoyRequest, outcome, startService, type RunningService } from './helpers/service.js';

const TOKEN = '4a7c1e9b2d3f40a6b8c0d2e4f6a8b0c2';

describe('DDI path parser', () => {
  it('reads tenant and controller id', () => {
    const result = parseDdiPath('/Default/controller/v1/device-01/deploymentBase/3?c=1');
    expect(result).to.deep.equal({ ok: true, target: { tenant: 'Default', tenantKey: 'DEFAULT', controllerId: 'device-01' } });
  });

  it('upper-cases the tenant key', () => {
    const cases: [segment: string, tenant: string, tenantKey: string][] = [
      ['DEFAULT', 'DEFAULT', 'DEFAULT'],
      ['default', 'default', 'DEFAULT'],
      ['Acme-1_z', 'Acme-1_z', 'ACME-1_Z'],
      ['stra%C3%9Fe', 'straße', 'STRASSE'],
      ['%C3%A9t%C3%A9', 'été', 'ÉTÉ'],
      ['%C3%89T%C3%89', 'ÉTÉ', 'ÉTÉ'],
    ];
    for (const [segment, tenant, tenantKey] of cases) {
      const result = parseDdiPath(`/${segment}/controller/v1/device-01`);
      expect(result, segment).to.deep.equal({ ok: true, target: { tenant, tenantKey, controllerId: 'device-01' } });
    }
  });

  it('decodes each segment once as UTF-8 and keeps +', () => {
    const result = parseDdiPath('/T/controller/v1/a+b%20c%C3%A4%2541');
    // %25 is rejected by the firewall rules, so check decoding without it.
    expect(result.ok).to.equal(false);
    const plus = parseDdiPath('/T/controller/v1/a+b%C3%A4%c3%b6');
    expect(plus).to.deep.equal({ ok: true, target: { tenant: 'T', tenantKey: 'T', controllerId: 'a+bäö' } });
  });

  it('accepts a controller id of 256 characters and rejects 257', () => {
    expect(parseDdiPath(`/T/controller/v1/${'x'.repeat(256)}`).ok).to.equal(true);
    expect(parseDdiPath(`/T/controller/v1/${'x'.repeat(257)}`)).to.deep.equal({ ok: false, reason: 'controller_id_invalid' });
  });

  it('rejects a tenant longer than 40 characters', () => {
    expect(parseDdiPath(`/${'t'.repeat(40)}/controller/v1/d`).ok).to.equal(true);
    expect(parseDdiPath(`/${'t'.repeat(41)}/controller/v1/d`)).to.deep.equal({ ok: false, reason: 'tenant_invalid' });
  });

  const cases: [string, string][] = [
    ['/', 'path_not_ddi'],
    ['', 'path_not_ddi'],
    ['/rest/v1/targets', 'path_not_ddi'],
    ['/T/controller/v1', 'path_not_ddi'],
    ['/T/controller/v2/d', 'path_not_ddi'],
    ['/T/controller/artifacts/v1/d', 'path_not_ddi'],
    ['/T/Controller/v1/d', 'path_not_canonical'],
    ['/T/CONTROLLER/V1/d', 'path_not_canonical'],
    ['/T/%63ontroller/v1/d', 'path_not_canonical'],
    ['/T/controller/%761/d', 'path_not_canonical'],
    ['//T/controller/v1/d', 'path_not_canonical'],
    ['/T//controller/v1/d', 'path_not_canonical'],
    ['/T/controller/v1//d', 'path_not_canonical'],
    ['/T/controller/v1/d//x', 'path_not_canonical'],
    ['/T/controller/v1/d/', 'ok'],
    ['/T/controller/v1/d//', 'path_not_canonical'],
    ['/T/./controller/v1/d', 'path_not_canonical'],
    ['/T/controller/v1/../v1/d', 'path_not_canonical'],
    ['/T/controller/v1/d/..', 'path_not_canonical'],
    ['/T/controller/v1/d/.', 'path_not_canonical'],
    ['/T/controller/v1/d;jsessionid=1', 'path_not_canonical'],
    ['/T/controller/v1/d%3Bx', 'path_not_canonical'],
    ['/T/controller/v1/d%3bx', 'path_not_canonical'],
    ['/T/controller/v1/d\\x', 'path_not_canonical'],
    ['/T/controller/v1/d%5Cx', 'path_not_canonical'],
    ['/T/controller/v1/d%2Fx', 'path_not_canonical'],
    ['/T/controller/v1/d%2fx', 'path_not_canonical'],
    ['/T/controller/v1/d%2Ex', 'path_not_canonical'],
    ['/T/controller/v1/%2E%2E', 'path_not_canonical'],
    ['/T/controller/v1/d%25x', 'path_not_canonical'],
    ['/T/controller/v1/d%00', 'path_not_canonical'],
    ['/T/controller/v1/d%', 'path_not_canonical'],
    ['/T/controller/v1/d%4', 'path_not_canonical'],
    ['/T/controller/v1/d%zz', 'path_not_canonical'],
    ['/T/controller/v1/d%C3', 'path_not_canonical'],
    ['/T/controller/v1/d%FF%FE', 'path_not_canonical'],
    ['/T/controller/v1/d%C0%AF', 'path_not_canonical'],
    ['/T/controller/v1/d x', 'path_not_canonical'],
    ['/T/controller/v1/d\tx', 'path_not_canonical'],
    ['/T/controller/v1/dä', 'path_not_canonical'],
    ['/T/controller/v1/d#frag', 'path_not_canonical'],
    ['/T/controller/v1/d%20x', 'controller_id_invalid'],
    ['/T/controller/v1/d%09x', 'controller_id_invalid'],
    ['/T/controller/v1/d%0Ax', 'controller_id_invalid'],
    ['/T/controller/v1/d%7Fx', 'controller_id_invalid'],
    ['/T/controller/v1/d%C2%85x', 'controller_id_invalid'],
    ['/T%20X/controller/v1/d', 'tenant_invalid'],
    [`/T/controller/v1/${'a'.repeat(9000)}`, 'path_not_canonical'],
  ];
  for (const [path, expected] of cases) {
    it(`${expected === 'ok' ? 'accepts' : 'rejects'} ${JSON.stringify(path.length > 60 ? path.slice(0, 40) + '...' : path)}`, () => {
      const result = parseDdiPath(path);
      if (expected === 'ok') {
        expect(result.ok).to.equal(true);
      } else {
        expect(result).to.deep.equal({ ok: false, reason: expected });
      }
    });
  }
});

describe('Check on non-DDI and non-canonical paths', () => {
  let service: RunningService;

  before(async () => {
    service = await startService(`
tenants:
  T:
    config: { authentication.targettoken.enabled: true }
    targets:
      d: { securityToken: "${TOKEN}" }
`);
  });

  after(async () => {
    await service.stop();
  });

  it('denies every rejected form with 403 and code 7 even with a valid token', async () => {
    const rejected = [
      '/rest/v1/targets',
      '/T/Controller/v1/d',
      '/T/controller/v1//d',
      '/T/controller/v1/d/../d',
      '/T/controller/v1/d;x',
      '/T/controller/v1/d%2F',
      '/T/controller/v1/d%5C',
      '/T/controller/v1/d%2E',
      '/T/controller/v1/d%25',
      '/T/controller/v1/d%00',
      '/T/controller/v1/d%3B',
      '/T/controller/v1/d%ZZ',
      '/T/controller/v1/d%C3',
      '/T/controller/v1/d%20',
      `/T/controller/v1/${'d'.repeat(257)}`,
    ];
    for (const path of rejected) {
      const response = await service.check(envoyRequest(path, { authorization: `TargetToken ${TOKEN}` }));
      expect(outcome(response), path).to.deep.equal({ grpc: 7, http: 403 });
    }
  });

  it('decides a path before any tenant lookup', async () => {
    const response = await service.check(envoyRequest('/UNKNOWN/Controller/v1/d'));
    expect(outcome(response)).to.deep.equal({ grpc: 7, http: 403 });
    const last = service.log.records.at(-1) ?? {};
    expect(last.reason).to.equal('path_not_canonical');
    expect(last.tenant).to.equal(undefined);
  });
});
