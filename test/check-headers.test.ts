import { expect } from 'chai';
import fc from 'fast-check';
import { headerSafe } from '../src/envoy/check-response.js';
import { fuzzParameters } from './helpers/fuzz.js';
import { envoyRawHeaderRequest, envoyRequest, outcome, setHeaders, startService, type RunningService } from './helpers/service.js';

const TOKEN = '4a7c1e9b2d3f40a6b8c0d2e4f6a8b0c2';

const tenants = `
tenants:
  DEFAULT:
    config: { authentication.targettoken.enabled: true }
    targets:
      device-01: { securityToken: "${TOKEN}" }
      device-02: { securityToken: "0b1c2d3e4f5061728394a5b6c7d8e9f0" }
`;

/** Headers a device could send to pose as device-02 towards hawkBit. */
const SPOOFED = {
  'x-ddi-tenant': 'OTHER',
  'x-ddi-controller-id': 'device-02',
  'x-ddi-auth-method': 'certificate',
  'x-controller-id': 'device-02',
  'x-authority': 'trusted-authority',
  'x-authority-0': 'trusted-authority',
  'x-authority-1': 'trusted-authority',
  'x-ssl-client-cn': 'device-02',
  'x-ssl-issuer-hash-1': '622b8155',
  'x-ssl-issuer-hash-2': '622b8155',
  'x-custom-identity': 'device-02',
};

describe('Check response header handling', () => {
  describe('with hawkBit header auth off', () => {
    let service: RunningService;

    before(async () => {
      service = await startService(`
upstream:
  removeHeaders: [X-Custom-Identity]
${tenants}`);
    });

    after(async () => {
      await service.stop();
    });

    it('overwrites spoofed identity headers and removes hawkBit headers', async () => {
      const response = await service.check(envoyRequest('/DEFAULT/controller/v1/device-01', { authorization: `TargetToken ${TOKEN}`, ...SPOOFED }));
      expect(outcome(response).grpc).to.equal(0);
      const headers = setHeaders(response);
      expect(headers['x-ddi-tenant']).to.equal('DEFAULT');
      expect(headers['x-ddi-controller-id']).to.equal('device-01');
      expect(headers['x-ddi-auth-method']).to.equal('target-token');
      const removed = response.ok_response?.headers_to_remove ?? [];
      for (const name of ['x-controller-id', 'x-authority', 'x-authority-0', 'x-authority-1', 'x-ssl-client-cn', 'x-ssl-issuer-hash-1', 'x-ssl-issuer-hash-2', 'x-custom-identity']) {
        expect(removed, name).to.include(name);
      }
    });

    it('never lists a header it sets for removal', async () => {
      const response = await service.check(envoyRequest('/DEFAULT/controller/v1/device-01', { authorization: `TargetToken ${TOKEN}`, ...SPOOFED }));
      const removed = new Set(response.ok_response?.headers_to_remove ?? []);
      for (const option of response.ok_response?.headers ?? []) {
        expect(removed.has(option.header.key.toLowerCase()), option.header.key).to.equal(false);
      }
    });

    it('keeps Authorization when hawkBit does not trust the proxy', async () => {
      const response = await service.check(envoyRequest('/DEFAULT/controller/v1/device-01', { authorization: `TargetToken ${TOKEN}` }));
      expect(response.ok_response?.headers_to_remove ?? []).not.to.include('authorization');
    });

    it('finds spoofed headers in header_map too', async () => {
      const response = await service.check(
        envoyRawHeaderRequest('/DEFAULT/controller/v1/device-01', [
          ['authorization', `TargetToken ${TOKEN}`],
          ['x-controller-id', 'device-02'],
          ['x-controller-id', 'device-03'],
          ['x-authority-7', 'x'],
        ]),
      );
      expect(outcome(response).grpc).to.equal(0);
      expect(response.ok_response?.headers_to_remove).to.include.members(['x-controller-id', 'x-authority-7']);
    });
  });

  describe('with hawkBit header auth on', () => {
    let service: RunningService;

    before(async () => {
      service = await startService(`
upstream:
  hawkbitHeaderAuth: { enabled: true, authority: edge-authenticated }
${tenants}`);
    });

    after(async () => {
      await service.stop();
    });

    it('sets hawkBit headers, removes Authorization and spoofed copies', async () => {
      const response = await service.check(envoyRequest('/DEFAULT/controller/v1/device-01', { authorization: `TargetToken ${TOKEN}`, ...SPOOFED }));
      expect(outcome(response).grpc).to.equal(0);
      const headers = setHeaders(response);
      expect(headers['x-controller-id']).to.equal('device-01');
      expect(headers['x-authority']).to.equal('edge-authenticated');
      const removed = response.ok_response?.headers_to_remove ?? [];
      expect(removed).to.include('authorization');
      expect(removed).to.include.members(['x-authority-0', 'x-authority-1', 'x-ssl-client-cn', 'x-ssl-issuer-hash-1']);
      expect(removed).not.to.include('x-controller-id');
      expect(removed).not.to.include('x-authority');
    });

    it('denies a controller id hawkBit cannot match in a header', async () => {
      const response = await service.check(envoyRequest(`/DEFAULT/controller/v1/${encodeURIComponent('gerät')}`, { authorization: `TargetToken ${TOKEN}` }));
      expect(outcome(response)).to.deep.equal({ grpc: 7, http: 403 });
      expect(service.log.records.at(-1)?.reason).to.equal('controller_id_not_ascii');
    });

    it('never sets hawkBit headers on a deny', async () => {
      const response = await service.check(envoyRequest('/DEFAULT/controller/v1/device-02', { authorization: `TargetToken ${TOKEN}`, ...SPOOFED }));
      expect(outcome(response)).to.deep.equal({ grpc: 16, http: 401 });
      expect(response.ok_response).to.equal(undefined);
    });
  });

  describe('for hawkBit 0.9 header names', () => {
    let service: RunningService;

    before(async () => {
      service = await startService(`
upstream:
  hawkbitHeaderAuth: { enabled: true, controllerIdHeader: X-Ssl-Client-Cn, authorityHeader: X-Ssl-Issuer-Hash-1, authority: edge-authenticated }
${tenants}`);
    });

    after(async () => {
      await service.stop();
    });

    it('sets X-Ssl-Client-Cn and X-Ssl-Issuer-Hash-1', async () => {
      const response = await service.check(envoyRequest('/DEFAULT/controller/v1/device-01', { authorization: `TargetToken ${TOKEN}`, ...SPOOFED }));
      const headers = setHeaders(response);
      expect(headers['x-ssl-client-cn']).to.equal('device-01');
      expect(headers['x-ssl-issuer-hash-1']).to.equal('edge-authenticated');
      const removed = response.ok_response?.headers_to_remove ?? [];
      expect(removed).to.include.members(['x-ssl-issuer-hash-2', 'x-controller-id', 'x-authority']);
      expect(removed).not.to.include('x-ssl-issuer-hash-1');
    });
  });

  describe('in audit mode', () => {
    let service: RunningService;

    before(async () => {
      service = await startService(`
mode: audit
${tenants}`);
    });

    after(async () => {
      await service.stop();
    });

    it('passes a would-be deny without identity and logs the deny', async () => {
      const response = await service.check(envoyRequest('/DEFAULT/controller/v1/device-01', { authorization: 'TargetToken wrong', ...SPOOFED }));
      expect(outcome(response).grpc).to.equal(0);
      expect(response.ok_response?.headers ?? []).to.deep.equal([]);
      expect(response.ok_response?.headers_to_remove).to.include.members(['x-ddi-controller-id', 'x-controller-id', 'x-ddi-tenant']);
      const last = service.log.records.at(-1) ?? {};
      expect(last).to.include({ result: 'deny', reason: 'token_mismatch', mode: 'audit' });
    });
  });
});

describe('headerSafe', () => {
  it('encodes only non-printable values', () => {
    const unit = fc.constantFrom('a', 'Z', '0', '~', '!', ' ', '\t', '\u007f', '\u0000', 'é', 'ä', '\u00a0', '€', '😀', '%');
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 12 }), (value) => {
        const printable = /^[\x21-\x7e]*$/.test(value);
        expect(headerSafe(value)).to.equal(printable ? value : encodeURIComponent(value));
      }),
      fuzzParameters(),
    );
  });
});
