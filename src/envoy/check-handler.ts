import type * as grpc from '@grpc/grpc-js';
import type { Decision } from '../auth/decision.js';
import { deny } from '../auth/decision.js';
import type { AuthPipeline } from '../auth/pipeline.js';
import type { MaybePromise } from '../store/store.js';
import { RequestHeaders, type AuthRequest } from '../auth/request.js';
import type { LogLevel, Mode } from '../config/schema.js';
import { DecisionLog } from '../observability/decision-log.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { toAuthRequest } from './check-request.js';
import { INTERNAL_ERROR_RESPONSE, type CheckResponseBuilder } from './check-response.js';
import type { CheckRequestMessage, CheckResponseMessage } from './messages.js';

/** Upper bound on one decision when Envoy sends no deadline, in milliseconds. */
export const DECISION_TIMEOUT_MS = 5_000;

/** Pipeline, response builder and settings of a Check, replaced as a whole on reload. */
export interface CheckRuntime {
  pipeline: AuthPipeline;
  responses: CheckResponseBuilder;
  mode: Mode;
  allowLevel: LogLevel;
  denyLevel: LogLevel;
}

export interface CheckHandlerOptions {
  /** Returns the current runtime; a call keeps the one it started with, so a reload never changes a call in flight. */
  runtime: () => CheckRuntime;
  logger: Logger;
  metrics?: Metrics;
}

/** A Check in the batch it arrived in, with the runtime and the clock reading of its start. */
interface QueuedCheck {
  call: grpc.ServerUnaryCall<CheckRequestMessage, CheckResponseMessage>;
  callback: grpc.sendUnaryData<CheckResponseMessage>;
  runtime: CheckRuntime;
  startedMs: number;
  /** The request as the pipeline reads it, once read. */
  request: AuthRequest | undefined;
  /** The decision that the response carries, once the response is built. */
  decision: Decision | undefined;
}

/**
 * The gRPC Check handler. It always responds with a CheckResponse, because a thrown
 * error would be an RPC failure, which `failure_mode_allow` can turn into an
 * allow, so failures to decide become 503 denies here.
 *
 * Calls are handled in batches from a `setImmediate` callback. Every Check
 * that arrived in one event-loop turn is decided, one after another, and then
 * all their responses are sent. Responding there instead of inside grpc-js's
 * read callback cut the CPU per call by about 20%, in the no-op server as
 * well. Deciding a whole batch before sending any of it saved another 12%,
 * likely because the decision code and the sending code each stay in the CPU
 * caches. Both figures come from h2load runs of the `token-allow` benchmark on
 * a 2-core VM. At low load a batch contains one call and waits only for the
 * rest of the current event-loop turn. Decisions are logged and counted after
 * the batch's responses are handed to grpc-js, so the logged duration covers
 * the wait for the batch and the hand-over. The bytes reach the socket only
 * after this turn's JavaScript returns, logging included.
 */
export function createCheckHandler(options: CheckHandlerOptions): grpc.handleUnaryCall<CheckRequestMessage, CheckResponseMessage> {
  const { logger, metrics } = options;
  const decisionLog = new DecisionLog(logger);

  /**
   * Builds the response to a Check's decision and keeps the decision on the
   * Check, to be logged and counted once the response is handed over. A
   * response that cannot be built becomes a 503 deny, and that is what gets logged.
   */
  const responseFor = (check: QueuedCheck, decision: Decision): CheckResponseMessage => {
    const { runtime, request } = check;
    const headers = request?.headers ?? new RequestHeaders();
    const { responses } = runtime;
    check.decision = decision;
    try {
      // Audit mode lets a would-be deny through without identity, still stripping client-sent identity headers.
      return runtime.mode === 'audit' && decision.kind === 'deny' ? responses.buildAuditPass(headers) : responses.build(decision, headers);
    } catch (error) {
      logger.error({ err: error, requestId: request?.requestId }, 'failed to build the Check response; denying');
      check.decision = deny('internal_error');
      return INTERNAL_ERROR_RESPONSE;
    }
  };

  /** Logs a failure to log or count a decision, or writes it to stderr when the logger fails too. */
  const reportRecordFailure = (error: unknown, requestId: string | undefined): void => {
    try {
      logger.error({ err: error, requestId }, 'failed to log or count a Check decision');
    } catch {
      process.stderr.write('hawkbit-ext-authz: failed to log or count a Check decision, and the logger failed too\n');
    }
  };

  /**
   * Logs and counts the decision of a Check whose response was handed to
   * grpc-js at `sentMs` (a `performance.now()` reading) and `sentAtMs` (epoch
   * milliseconds). A failure in either step is reported and changes nothing else.
   */
  const record = (check: QueuedCheck, sentMs: number, sentAtMs: number): void => {
    const { runtime, request, decision } = check;
    if (decision === undefined) {
      return;
    }
    const durationSeconds = (sentMs - check.startedMs) / 1000;
    const audit = runtime.mode === 'audit';
    try {
      decisionLog.write(decision.kind === 'allow' ? runtime.allowLevel : runtime.denyLevel, { requestId: request?.requestId ?? '', decision, durationSeconds, audit, timeMs: sentAtMs });
    } catch (error) {
      reportRecordFailure(error, request?.requestId);
    }
    try {
      metrics?.recordDecision(decision, durationSeconds, audit);
    } catch (error) {
      reportRecordFailure(error, request?.requestId);
    }
  };

  const send = (check: QueuedCheck, response: CheckResponseMessage, requestId?: string): void => {
    try {
      check.callback(null, response);
    } catch (error) {
      logger.error({ err: error, requestId }, 'failed to send a Check response');
    }
  };

  /**
   * Decides one queued Check and returns its response, or undefined when the
   * decision waits on a lookup. Such a decision is sent when it settles or
   * when its deadline passes. A decision made here is kept on the Check, to be
   * logged and counted once the batch's responses are handed over.
   */
  const decide = (check: QueuedCheck): CheckResponseMessage | undefined => {
    const { call, runtime } = check;
    let request: AuthRequest;
    let result: MaybePromise<Decision>;
    try {
      request = toAuthRequest(call.request);
    } catch (error) {
      logger.error({ err: error }, 'failed to read the CheckRequest; denying');
      return responseFor(check, deny('internal_error'));
    }
    check.request = request;
    try {
      result = runtime.pipeline.decide(request);
    } catch (error) {
      logger.error({ err: error, requestId: request.requestId }, 'Check failed; denying');
      result = deny('internal_error');
    }
    // Most decisions need no lookup that waits, so they need no deadline either.
    if (!(result instanceof Promise)) {
      return responseFor(check, result);
    }
    awaitDecision(check, request, result);
    return undefined;
  };

  /**
   * Sends a decision that waits on a lookup when it settles, or a deny when the
   * Check's deadline passes first. It is a function of its own, because the
   * closures it makes would make V8 allocate their context on every call of
   * `decide`, even for the decisions that do not wait.
   */
  const awaitDecision = (check: QueuedCheck, request: AuthRequest, result: Promise<Decision>): void => {
    let settled = false;
    const settle = (decision: Decision): void => {
      if (!settled) {
        settled = true;
        sendLater(check, decision);
      }
    };
    const deadline = deadlines.add(Date.now() + remainingMs(check.call.getDeadline()), () => settle(deny('deadline_exceeded')));
    result.then(
      (decision) => {
        deadlines.delete(deadline);
        // A decision that arrives after the deadline is dropped; the deny already went out.
        settle(decision);
      },
      (error: unknown) => {
        deadlines.delete(deadline);
        logger.error({ err: error, requestId: request.requestId }, 'Check failed; denying');
        settle(deny('internal_error'));
      },
    );
  };

  /**
   * Sends, logs and counts a decision that settled after its batch. It runs
   * from a promise or a timer, where a throw would end the process, so each of
   * its steps catches its own failures.
   */
  const sendLater = (check: QueuedCheck, decision: Decision): void => {
    send(check, responseFor(check, decision), check.request?.requestId);
    record(check, performance.now(), Date.now());
  };

  let pending: QueuedCheck[] = [];

  const runBatch = (): void => {
    const batch = pending;
    pending = [];
    const responses: (CheckResponseMessage | undefined)[] = [];
    for (const check of batch) {
      try {
        responses.push(decide(check));
      } catch (error) {
        // A Check that fails outside the guarded steps must not take the rest of the batch with it.
        logger.error({ err: error }, 'Check failed; denying');
        check.decision = deny('internal_error');
        responses.push(INTERNAL_ERROR_RESPONSE);
      }
    }
    for (let index = 0; index < batch.length; index++) {
      const response = responses[index];
      if (response !== undefined) {
        send(batch[index], response);
      }
    }
    // One reading of each clock for the batch, so each duration ends when all of the batch's responses were handed over.
    const sentMs = performance.now();
    const sentAtMs = Date.now();
    for (const check of batch) {
      record(check, sentMs, sentAtMs);
    }
  };

  return (call, callback) => {
    if (pending.length === 0) {
      setImmediate(runBatch);
    }
    pending.push({ call, callback, runtime: options.runtime(), startedMs: performance.now(), request: undefined, decision: undefined });
  };
}

/** How often pending decisions are checked against their deadlines, in milliseconds. */
export const DEADLINE_SWEEP_INTERVAL_MS = 5;

/**
 * Deadlines of pending decisions, swept by one timer while any are pending,
 * instead of a timer per call: a decision usually finishes long before its
 * deadline, and arming and clearing a timer per call showed in the profile.
 * A deadline fires up to one sweep interval late.
 */
class DeadlineSweeper {
  readonly #pending = new Set<{ at: number; fire: () => void }>();
  #timer: NodeJS.Timeout | undefined;

  add(at: number, fire: () => void): { at: number; fire: () => void } {
    const entry = { at, fire };
    this.#pending.add(entry);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#sweep(), DEADLINE_SWEEP_INTERVAL_MS);
      this.#timer.unref();
    }
    return entry;
  }

  delete(entry: { at: number; fire: () => void }): void {
    this.#pending.delete(entry);
  }

  #sweep(): void {
    const now = Date.now();
    for (const entry of this.#pending) {
      if (entry.at <= now) {
        this.#pending.delete(entry);
        entry.fire();
      }
    }
    if (this.#pending.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

const deadlines = new DeadlineSweeper();

function remainingMs(deadline: grpc.Deadline): number {
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  if (!Number.isFinite(at)) {
    return DECISION_TIMEOUT_MS;
  }
  return Math.max(0, Math.min(DECISION_TIMEOUT_MS, at - Date.now()));
}
