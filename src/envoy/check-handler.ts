import type * as grpc from '@grpc/grpc-js';
import type { Decision } from '../auth/decision.js';
import { deny } from '../auth/decision.js';
import type { AuthPipeline } from '../auth/pipeline.js';
import { RequestHeaders, type AuthRequest } from '../auth/request.js';
import type { Mode } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import { toAuthRequest } from './check-request.js';
import type { CheckResponseBuilder } from './check-response.js';
import type { CheckRequestMessage, CheckResponseMessage } from './messages.js';

/** Upper bound on one decision when Envoy sends no deadline, in milliseconds. */
export const DECISION_TIMEOUT_MS = 5_000;

export interface CheckHandlerOptions {
  pipeline: AuthPipeline;
  responses: CheckResponseBuilder;
  logger: Logger;
  mode: Mode;
}

/**
 * The gRPC Check handler. It always answers with a CheckResponse: a thrown
 * error would be an RPC failure, which `failure_mode_allow` can turn into an
 * allow, so failures to decide become 503 denies here.
 */
export function createCheckHandler(options: CheckHandlerOptions): grpc.handleUnaryCall<CheckRequestMessage, CheckResponseMessage> {
  const { pipeline, responses, logger, mode } = options;

  return (call, callback) => {
    const started = process.hrtime.bigint();
    let request: AuthRequest | undefined;

    const finish = (decision: Decision): void => {
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      logDecision(logger, request, decision, durationMs, mode);
      const headers = request?.headers ?? new RequestHeaders();
      try {
        // Audit mode lets a would-be deny through without identity, still stripping client-sent identity headers.
        const response = mode === 'audit' && decision.kind === 'deny' ? responses.buildAuditPass(headers) : responses.build(decision, headers);
        callback(null, response);
      } catch (error) {
        logger.error({ err: error, requestId: request?.requestId }, 'failed to build the Check response; denying');
        callback(null, responses.build(deny('internal_error'), new RequestHeaders()));
      }
    };

    try {
      request = toAuthRequest(call.request);
    } catch (error) {
      logger.error({ err: error }, 'failed to read the CheckRequest; denying');
      finish(deny('internal_error'));
      return;
    }

    const timeoutMs = remainingMs(call.getDeadline());
    let settled = false;
    const timer = setTimeout(() => {
      if (!settled) {
        settled = true;
        finish(deny('deadline_exceeded'));
      }
    }, timeoutMs);

    pipeline.decide(request).then(
      (decision) => {
        clearTimeout(timer);
        // A decision that arrives after the deadline is dropped; the deny already went out.
        if (!settled) {
          settled = true;
          finish(decision);
        }
      },
      (error: unknown) => {
        clearTimeout(timer);
        logger.error({ err: error, requestId: request?.requestId }, 'Check failed; denying');
        if (!settled) {
          settled = true;
          finish(deny('internal_error'));
        }
      },
    );
  };
}

function remainingMs(deadline: grpc.Deadline): number {
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  if (!Number.isFinite(at)) {
    return DECISION_TIMEOUT_MS;
  }
  return Math.max(0, Math.min(DECISION_TIMEOUT_MS, at - Date.now()));
}

function logDecision(logger: Logger, request: AuthRequest | undefined, decision: Decision, durationMs: number, mode: Mode): void {
  const fields = {
    requestId: request?.requestId ?? '',
    tenant: decision.tenant,
    controllerId: decision.controllerId,
    method: decision.method,
    result: decision.kind,
    reason: decision.kind === 'deny' ? decision.reason : undefined,
    httpStatus: decision.kind === 'deny' ? decision.httpStatus : 200,
    durationMs: Math.round(durationMs * 1000) / 1000,
    mode: mode === 'audit' ? 'audit' : undefined,
  };
  if (decision.kind === 'allow') {
    logger.info(fields, 'allow');
  } else {
    logger.warn(fields, 'deny');
  }
}
