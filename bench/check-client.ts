import * as grpc from '@grpc/grpc-js';
import type { CheckRequestMessage, CheckResponseMessage } from '../src/envoy/messages.js';
import { authorizationService } from '../src/envoy/proto.js';
import type { ExpectedDecision } from './scenarios.js';

/** Deadline of one verification call, in milliseconds. */
const CHECK_DEADLINE_MS = 5_000;

/** Sends one Check with @grpc/grpc-js, as the service's own `check` command does. */
export function sendCheck(address: string, request: CheckRequestMessage): Promise<CheckResponseMessage> {
  const Client = authorizationService();
  const client = new Client(address, grpc.credentials.createInsecure());
  return new Promise<CheckResponseMessage>((resolve, reject) => {
    client.Check(request, { deadline: Date.now() + CHECK_DEADLINE_MS }, (error: grpc.ServiceError | null, response: CheckResponseMessage) =>
      error ? reject(error) : resolve(response),
    );
  }).finally(() => client.close());
}

/** Returns why a response does not carry the expected decision, or undefined when it does. */
export function decisionMismatch(response: CheckResponseMessage, expected: ExpectedDecision): string | undefined {
  const code = response.status?.code ?? 0;
  if (expected.result === 'allow') {
    if (code !== 0) {
      return `expected an allow, got gRPC code ${code} with HTTP ${response.denied_response?.status?.code}`;
    }
    const method = response.ok_response?.headers.find((option) => option.header.key === 'x-ddi-auth-method')?.header.value;
    return method === expected.method ? undefined : `expected an allow by ${expected.method}, got x-ddi-auth-method ${method}`;
  }
  const status = Number(response.denied_response?.status?.code ?? 0);
  return code !== 0 && status === expected.httpStatus ? undefined : `expected a deny with HTTP ${expected.httpStatus}, got gRPC code ${code}, HTTP ${status}`;
}
