import type { CheckRequestMessage, CheckResponseMessage } from '../src/envoy/messages.js';
import { authorizationService } from '../src/envoy/proto.js';

interface MethodDefinition {
  requestSerialize(value: unknown): Buffer;
  responseDeserialize(bytes: Buffer): unknown;
}

function checkMethod(): MethodDefinition {
  return authorizationService().service.Check as unknown as MethodDefinition;
}

/**
 * Encodes a CheckRequest as the body of a gRPC call: the length-prefixed
 * message (1 byte compressed flag 0, 4 bytes big-endian length, then the
 * protobuf bytes), exactly as a gRPC client writes it in its DATA frames.
 */
export function grpcRequestBody(request: CheckRequestMessage): Buffer {
  const message = checkMethod().requestSerialize(request);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt8(0, 0);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** Decodes protobuf bytes of a CheckResponse with the service's loader options. */
export function decodeCheckResponse(bytes: Buffer): CheckResponseMessage {
  return checkMethod().responseDeserialize(bytes) as CheckResponseMessage;
}
