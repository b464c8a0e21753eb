import { expect } from 'chai';
import { RequestHeaders } from '../src/auth/request.js';
import { toAuthRequest } from '../src/envoy/check-request.js';
import type { CheckRequestMessage } from '../src/envoy/messages.js';

/** Selects every header name. */
const ALL_NAMES = { matches: () => true };

function checkRequest(http: NonNullable<NonNullable<NonNullable<CheckRequestMessage['attributes']>['request']>['http']>): CheckRequestMessage {
  return { attributes: { request: { http } } };
}

describe('RequestHeaders', () => {
  it('reads a lower-case map in place', () => {
    const map = { authorization: 'TargetToken abc', 'x-request-id': 'req-1' };
    const headers = RequestHeaders.ofLowerCaseMap(map);
    expect(headers.single('authorization')).to.equal('TargetToken abc');
    expect(headers.first('x-request-id')).to.equal('req-1');
    expect(headers.all('x-request-id')).to.deep.equal(['req-1']);
    expect(headers.has('authorization')).to.equal(true);
    expect(headers.namesMatching(ALL_NAMES)).to.deep.equal(['authorization', 'x-request-id']);
  });

  it('selects names from a wrapped map', () => {
    const map = Object.create({ 'x-inherited': 'not a header' }) as Record<string, string>;
    Object.assign(map, { ':path': '/', 'x-request-id': 'req-1', 'x-tenant': 'DEFAULT', accept: '*/*' });
    const headers = RequestHeaders.ofLowerCaseMap(map);
    expect(headers.namesMatching({ matches: (name) => name.startsWith('x-') })).to.deep.equal(['x-request-id', 'x-tenant']);
    expect(headers.namesMatching({ matches: (name) => name === 'host' })).to.equal(undefined);
  });

  it('selects names from added headers', () => {
    const headers = new RequestHeaders();
    headers.add('X-Tenant', 'DEFAULT');
    headers.add('Accept', '*/*');
    headers.add('x-tenant', 'OTHER');
    expect(headers.namesMatching({ matches: (name) => name.startsWith('x-') })).to.deep.equal(['x-tenant']);
    expect(headers.namesMatching(ALL_NAMES)).to.deep.equal(['x-tenant', 'accept']);
  });

  it('ignores inherited object names', () => {
    const headers = RequestHeaders.ofLowerCaseMap({ host: 'example' });
    for (const name of ['constructor', 'tostring', '__proto__', 'hasownproperty']) {
      expect(headers.has(name), name).to.equal(false);
      expect(headers.first(name), name).to.equal(undefined);
      expect(headers.all(name), name).to.deep.equal([]);
    }
  });

  it('copies a wrapped map before adding', () => {
    const map = { authorization: 'TargetToken abc' };
    const headers = RequestHeaders.ofLowerCaseMap(map);
    headers.add('Authorization', 'GatewayToken key');
    expect(headers.single('authorization')).to.equal(null);
    expect(headers.all('authorization')).to.deep.equal(['TargetToken abc', 'GatewayToken key']);
    expect(map).to.deep.equal({ authorization: 'TargetToken abc' });
  });

  it('keeps repeated values in order', () => {
    const headers = new RequestHeaders();
    headers.add('X-Forwarded-Client-Cert', 'first');
    headers.add('x-forwarded-client-cert', 'second');
    headers.add('x-forwarded-client-cert', 'third');
    expect(headers.all('x-forwarded-client-cert')).to.deep.equal(['first', 'second', 'third']);
    expect(headers.first('x-forwarded-client-cert')).to.equal('first');
    expect(headers.single('x-forwarded-client-cert')).to.equal(null);
  });
});

describe('toAuthRequest headers', () => {
  it('merges names that differ in case', () => {
    const request = toAuthRequest(checkRequest({ path: '/T/controller/v1/d', headers: { Authorization: 'TargetToken a', authorization: 'TargetToken b' } }));
    expect(request.headers.all('authorization')).to.have.members(['TargetToken a', 'TargetToken b']);
    expect(request.headers.single('authorization')).to.equal(null);
    expect(request.headerCount).to.equal(2);
  });

  it('merges case variants after many names', () => {
    // More distinct lower-case names than are remembered, so the later names are scanned.
    for (let batch = 0; batch < 12; batch++) {
      const headers = Object.fromEntries(Array.from({ length: 100 }, (_, index) => [`x-filler-${batch}-${index}`, 'v']));
      expect(toAuthRequest(checkRequest({ path: '/T/controller/v1/d', headers })).headerCount).to.equal(100);
    }
    const request = toAuthRequest(checkRequest({ path: '/T/controller/v1/d', headers: { 'x-filler-0-1': 'v', AUTHORIZATION: 'TargetToken a', authorization: 'TargetToken b' } }));
    expect(request.headers.all('authorization')).to.have.members(['TargetToken a', 'TargetToken b']);
    expect(request.headers.single('authorization')).to.equal(null);
  });

  it('counts map and raw headers', () => {
    const request = toAuthRequest(
      checkRequest({
        path: '/T/controller/v1/d',
        headers: { 'x-request-id': 'req-7' },
        header_map: { headers: [{ key: 'authorization', raw_value: Buffer.from('TargetToken raw') }] },
      }),
    );
    expect(request.requestId).to.equal('req-7');
    expect(request.headers.single('authorization')).to.equal('TargetToken raw');
    expect(request.headerCount).to.equal(2);
    expect(request.headerBytes).to.equal('x-request-id'.length + 'req-7'.length + 'authorization'.length + 'TargetToken raw'.length);
  });

  it('counts only own header names', () => {
    const prototype = Object.prototype as Record<string, unknown>;
    prototype.injected = 'value';
    try {
      const request = toAuthRequest(checkRequest({ path: '/T/controller/v1/d', headers: { host: 'h' } }));
      expect(request.headerCount).to.equal(1);
      expect(request.headerBytes).to.equal('host'.length + 'h'.length);
    } finally {
      delete prototype.injected;
    }
  });

  it('takes the path from the pseudo-header', () => {
    const request = toAuthRequest(checkRequest({ headers: { ':path': '/T/controller/v1/d' } }));
    expect(request.path).to.equal('/T/controller/v1/d');
  });
});
