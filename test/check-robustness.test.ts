import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { envoyRequest, outcome, startService, type RunningService } from './helpers/service.js';

const TOKEN = '4a7c1e9b2d3f40a6b8c0d2e4f6a8b0c2';

describe('Check with malformed and oversized input', () => {
  let service: RunningService;

  before(async () => {
    service = await startService(`
tenants:
  T:
    config: { authentication.targettoken.enabled: true, authentication.header.enabled: true, authentication.header.authority: "622b8155" }
    targets:
      d: { securityToken: "${TOKEN}" }
`);
  });

  after(async () => {
    await service.stop();
  });

  const allowedStill = async () => {
    const response = await service.check(envoyRequest('/T/controller/v1/d', { authorization: `TargetToken ${TOKEN}` }));
    expect(outcome(response).grpc, 'service still allows a valid device').to.equal(0);
  };

  it('denies an empty CheckRequest with 403', async () => {
    const response = await service.check({});
    expect(outcome(response)).to.deep.equal({ grpc: 7, http: 403 });
    await allowedStill();
  });

  it('denies a request without http attributes', async () => {
    const response = await service.check({ attributes: { source: {} } });
    expect(outcome(response)).to.deep.equal({ grpc: 7, http: 403 });
  });

  it('denies a one-megabyte Authorization header as too large', async () => {
    const response = await service.check(envoyRequest('/T/controller/v1/d', { authorization: `TargetToken ${'A'.repeat(1024 * 1024)}` }));
    expect(outcome(response)).to.deep.equal({ grpc: 7, http: 403 });
    expect(service.log.records.at(-1)?.reason).to.equal('request_too_large');
    await allowedStill();
  });

  it('denies an Authorization header over its own bound', async () => {
    const response = await service.check(envoyRequest('/T/controller/v1/d', { authorization: `TargetToken ${'A'.repeat(5000)}` }));
    expect(outcome(response)).to.deep.equal({ grpc: 16, http: 401 });
    expect(service.log.records.at(-1)?.reason).to.equal('authorization_malformed');
  });

  it('denies a path of one megabyte', async () => {
    const response = await service.check(envoyRequest(`/T/controller/v1/${'d'.repeat(1024 * 1024)}`, { authorization: `TargetToken ${TOKEN}` }));
    expect(outcome(response)).to.deep.equal({ grpc: 7, http: 403 });
  });

  it('denies thousands of junk headers as too many', async () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 5000; i++) {
      headers[`x-junk-${i}`] = randomBytes(8).toString('latin1');
    }
    const response = await service.check(envoyRequest('/T/controller/v1/d', { authorization: `TargetToken ${TOKEN}`, ...headers }));
    expect(outcome(response)).to.deep.equal({ grpc: 7, http: 403 });
    expect(service.log.records.at(-1)?.reason).to.equal('request_too_large');
    await allowedStill();
  });

  it('denies an oversized certificate and chain with their own reasons', async () => {
    const big = `-----BEGIN%20CERTIFICATE-----%0A${'A'.repeat(20 * 1024)}%0A-----END%20CERTIFICATE-----%0A`;
    const response = await service.check(envoyRequest('/T/controller/v1/d', {}, { certificate: big }));
    expect(outcome(response)).to.deep.equal({ grpc: 16, http: 401 });
    expect(service.log.records.at(-1)?.reason).to.equal('certificate_too_large');
  });

  it('denies binary junk in Authorization and certificate', async () => {
    for (let i = 0; i < 50; i++) {
      const junk = randomBytes(200).toString('latin1');
      const response = await service.check(envoyRequest('/T/controller/v1/d', { authorization: junk }, { certificate: junk }));
      expect(outcome(response).grpc).to.equal(16);
    }
    await allowedStill();
  });

  it('denies a certificate that is not PEM', async () => {
    const response = await service.check(envoyRequest('/T/controller/v1/d', {}, { certificate: '-----BEGIN%20CERTIFICATE-----%0Agarbage%0A-----END%20CERTIFICATE-----%0A' }));
    expect(outcome(response)).to.deep.equal({ grpc: 16, http: 401 });
    expect(service.log.records.at(-1)?.reason).to.equal('certificate_invalid');
  });

  it('answers a message of several megabytes with a deny, not an RPC error', async () => {
    const response = await service.check(envoyRequest('/T/controller/v1/d', { 'x-big': 'b'.repeat(6 * 1024 * 1024) }));
    expect(outcome(response)).to.deep.equal({ grpc: 7, http: 403 });
  });

  it('survives undecodable bytes on the wire', async () => {
    const client = new grpc.Client(service.handle.grpcAddress, grpc.credentials.createInsecure());
    const error = await new Promise<grpc.ServiceError | null>((resolve) => {
      client.makeUnaryRequest(
        '/envoy.service.auth.v3.Authorization/Check',
        (value: Buffer) => value,
        (value: Buffer) => value,
        Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]),
        (err) => resolve(err),
      );
    });
    client.close();
    expect(error?.code).to.equal(grpc.status.INTERNAL);
    await allowedStill();
  });

  it('denies a call whose deadline passes before the decision', async () => {
    let failure: grpc.ServiceError | undefined;
    try {
      await service.check(envoyRequest('/T/controller/v1/d', { authorization: `TargetToken ${TOKEN}` }), { deadlineMs: 0 });
    } catch (error) {
      failure = error as grpc.ServiceError;
    }
    expect(failure?.code).to.equal(grpc.status.DEADLINE_EXCEEDED);
    await allowedStill();
  });
});

describe('configured request limits', () => {
  it('apply the configured header and chain bounds', async () => {
    const service = await startService(`
limits: { maxHeaderBytes: 2048, maxHeaderCount: 10, maxChainCertificates: 2 }
ddi: { certificate: { trustXfcc: true } }
tenants:
  T:
    config: { authentication.targettoken.enabled: true, authentication.header.enabled: true, authentication.header.authority: "00000000" }
    targets:
      d: { securityToken: "${TOKEN}" }
`);
    try {
      const fits = await service.check(envoyRequest('/T/controller/v1/d', { authorization: `TargetToken ${TOKEN}`, 'x-pad': 'p'.repeat(1500) }));
      expect(outcome(fits).grpc).to.equal(0);
      const tooLarge = await service.check(envoyRequest('/T/controller/v1/d', { authorization: `TargetToken ${TOKEN}`, 'x-pad': 'p'.repeat(2100) }));
      expect(outcome(tooLarge)).to.deep.equal({ grpc: 7, http: 403 });
      const headers: Record<string, string> = { authorization: `TargetToken ${TOKEN}` };
      for (let i = 0; i < 10; i++) {
        headers[`x-h-${i}`] = 'v';
      }
      const tooMany = await service.check(envoyRequest('/T/controller/v1/d', headers));
      expect(outcome(tooMany)).to.deep.equal({ grpc: 7, http: 403 });

      const block = '-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20CERTIFICATE-----%0A';
      const longChain = await service.check(envoyRequest('/T/controller/v1/d', { 'x-forwarded-client-cert': `Hash=00;Chain="${block.repeat(3)}"` }));
      expect(outcome(longChain).grpc).to.equal(16);
      expect(service.log.records.at(-1)?.reason).to.equal('chain_too_long');
    } finally {
      await service.stop();
    }
  });
});
