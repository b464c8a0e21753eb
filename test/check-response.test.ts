import { expect } from 'chai';
import type { AllowDecision, AuthMethod } from '../src/auth/decision.js';
import { RequestHeaders } from '../src/auth/request.js';
import { parseConfig } from '../src/config/load.js';
import { CheckResponseBuilder } from '../src/envoy/check-response.js';
import type { CheckResponseMessage } from '../src/envoy/messages.js';

function builder(yaml = '{}'): CheckResponseBuilder {
  return new CheckResponseBuilder(parseConfig(yaml, '/tmp/check-response-test.yaml', { env: {} }));
}

function allow(tenant: string, controllerId: string, method: AuthMethod = 'target-token'): AllowDecision {
  return { kind: 'allow', tenant, controllerId, method };
}

/** Returns the headers an allow sets, as name and value pairs. */
function setHeaders(response: CheckResponseMessage): string[][] {
  return (response.ok_response?.headers ?? []).map((option) => [option.header.key, option.header.value]);
}

/** Returns the dynamic metadata of an allow as plain strings. */
function metadata(response: CheckResponseMessage): Record<string, string> {
  const fields = response.dynamic_metadata?.fields ?? {};
  return Object.fromEntries(Object.entries(fields).map(([key, value]) => [key, value.stringValue]));
}

describe('CheckResponseBuilder', () => {
  it('sets each allow\'s own identity', () => {
    const responses = builder();
    const first = responses.build(allow('DEFAULT', 'device-01'), new RequestHeaders());
    const second = responses.build(allow('OTHER', 'device-02', 'gateway-token'), new RequestHeaders());
    const third = responses.build(allow('DEFAULT', 'device-03', 'certificate'), new RequestHeaders());

    expect(setHeaders(first)).to.deep.equal([
      ['x-ddi-tenant', 'DEFAULT'],
      ['x-ddi-controller-id', 'device-01'],
      ['x-ddi-auth-method', 'target-token'],
    ]);
    expect(setHeaders(second)).to.deep.equal([
      ['x-ddi-tenant', 'OTHER'],
      ['x-ddi-controller-id', 'device-02'],
      ['x-ddi-auth-method', 'gateway-token'],
    ]);
    expect(setHeaders(third)).to.deep.equal([
      ['x-ddi-tenant', 'DEFAULT'],
      ['x-ddi-controller-id', 'device-03'],
      ['x-ddi-auth-method', 'certificate'],
    ]);
    expect(metadata(second)).to.deep.equal({ tenant: 'OTHER', controllerId: 'device-02', authMethod: 'gateway-token' });
    expect(metadata(third)).to.deep.equal({ tenant: 'DEFAULT', controllerId: 'device-03', authMethod: 'certificate' });
  });

  it('shares frozen tenant and method parts', () => {
    const responses = builder();
    const first = responses.build(allow('DEFAULT', 'device-01'), new RequestHeaders());
    const second = responses.build(allow('DEFAULT', 'device-02'), new RequestHeaders());
    const [firstTenant, firstId, firstMethod] = first.ok_response?.headers ?? [];
    const [secondTenant, secondId, secondMethod] = second.ok_response?.headers ?? [];

    expect(secondTenant).to.equal(firstTenant);
    expect(secondMethod).to.equal(firstMethod);
    expect(secondId).to.not.equal(firstId);
    expect(Object.isFrozen(firstTenant)).to.equal(true);
    expect(Object.isFrozen(firstTenant.header)).to.equal(true);
    expect(Object.isFrozen(first.dynamic_metadata?.fields.authMethod)).to.equal(true);
    expect(first.ok_response?.headers).to.not.equal(second.ok_response?.headers);
  });

  it('encodes a non-ASCII tenant only in the header', () => {
    const response = builder().build(allow('MÜNCHEN', 'device-01'), new RequestHeaders());
    expect(setHeaders(response)[0]).to.deep.equal(['x-ddi-tenant', 'M%C3%9CNCHEN']);
    expect(metadata(response).tenant).to.equal('MÜNCHEN');
  });

  it('keeps tenants right past its cache', () => {
    const responses = builder();
    for (let index = 0; index < 2_100; index++) {
      const tenant = `TENANT-${index}`;
      const response = responses.build(allow(tenant, 'device-01'), new RequestHeaders());
      expect(setHeaders(response)[0], tenant).to.deep.equal(['x-ddi-tenant', tenant]);
      expect(metadata(response).tenant, tenant).to.equal(tenant);
    }
  });

  it('lists client-sent identity headers for removal', () => {
    const responses = builder();
    const clean = responses.build(allow('DEFAULT', 'device-01'), new RequestHeaders());
    const headers = new RequestHeaders();
    headers.add('x-ssl-client-cn', 'device-01');
    headers.add('x-authority-0', 'forged');
    headers.add('accept', '*/*');
    const forged = responses.build(allow('DEFAULT', 'device-01'), headers);

    expect(clean.ok_response?.headers_to_remove).to.deep.equal([]);
    expect(forged.ok_response?.headers_to_remove).to.deep.equal(['x-ssl-client-cn', 'x-authority-0']);
  });

  it('adds authorization to the removal list for hawkBit headers', () => {
    const responses = builder('upstream: { hawkbitHeaderAuth: { enabled: true, authority: "ab12cd34" } }');
    const headers = new RequestHeaders();
    headers.add('x-ssl-issuer-hash-1', 'forged');
    const clean = responses.build(allow('DEFAULT', 'device-01'), new RequestHeaders());
    const forged = responses.build(allow('DEFAULT', 'device-01'), headers);

    expect(clean.ok_response?.headers_to_remove).to.deep.equal(['authorization']);
    expect(forged.ok_response?.headers_to_remove).to.deep.equal(['x-ssl-issuer-hash-1', 'authorization']);
    expect(setHeaders(clean).slice(3)).to.deep.equal([
      ['x-controller-id', 'device-01'],
      ['x-authority', 'ab12cd34'],
    ]);
  });
});
