import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { healthService } from '../src/envoy/proto.js';
import { envoyRequest, outcome, startService, type RunningService } from './helpers/service.js';

describe('health and draining', () => {
  let service: RunningService;

  beforeEach(async () => {
    service = await startService('tenants: { T: { config: { authentication.gatewaytoken.enabled: true, authentication.gatewaytoken.key: gwkey } } }');
  });

  afterEach(async () => {
    await service.stop();
  });

  it('reports SERVING for the overall and the Authorization service', async () => {
    expect(await service.health('')).to.equal('SERVING');
    expect(await service.health('envoy.service.auth.v3.Authorization')).to.equal('SERVING');
  });

  it('answers NOT_FOUND for an unknown service name', async () => {
    let failure: grpc.ServiceError | undefined;
    try {
      await service.health('no.such.Service');
    } catch (error) {
      failure = error as grpc.ServiceError;
    }
    expect(failure?.code).to.equal(grpc.status.NOT_FOUND);
  });

  it('answers /healthz, /readyz and 404 elsewhere', async () => {
    const base = `http://${service.handle.httpAddress}`;
    expect((await fetch(`${base}/healthz`)).status).to.equal(200);
    expect((await fetch(`${base}/readyz`)).status).to.equal(200);
    expect((await fetch(`${base}/nothing`)).status).to.equal(404);
  });

  it('streams NOT_SERVING to a watcher when draining starts', async () => {
    const Health = healthService();
    const client = new Health(service.handle.grpcAddress, grpc.credentials.createInsecure());
    const statuses: number[] = [];
    const stream = client.Watch({ service: '' });
    const ended = new Promise<void>((resolve) => {
      stream.on('data', (message: { status: number }) => statuses.push(message.status));
      stream.on('end', resolve);
      stream.on('error', () => resolve());
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await service.handle.stop({ timeoutMs: 1000 });
    await ended;
    client.close();
    expect(statuses[0]).to.equal(1);
    expect(statuses).to.include(2);
  });

  it('turns /readyz to 503 while draining and finishes calls in flight', async () => {
    const base = `http://${service.handle.httpAddress}`;
    const stopping = service.handle.stop({ drainDelayMs: 300, timeoutMs: 3000 });
    expect(await service.health('')).to.equal('NOT_SERVING');
    // Calls that arrive during the drain delay are still answered.
    const inFlight = Array.from({ length: 20 }, () => service.check(envoyRequest('/T/controller/v1/d', { authorization: 'GatewayToken gwkey' })));
    let readyStatus: number | undefined;
    try {
      readyStatus = (await fetch(`${base}/readyz`)).status;
    } catch {
      // The HTTP server may already be closed, which readiness probes also read as not ready.
      readyStatus = 503;
    }
    const responses = await Promise.all(inFlight);
    await stopping;
    expect(readyStatus).to.equal(503);
    for (const response of responses) {
      expect(outcome(response).grpc).to.equal(0);
    }
  });
});
