import type { Authenticator, AuthContext, MethodResult } from './authenticator.js';
import { parseAuthorization, type AuthorizationHeader } from './authorization-header.js';
import { deny, type AuthMethod, type Decision, type DenyDecision, type DenyReason } from './decision.js';
import { COUNTED_FAILURES, TOKEN_METHOD_BY_SCHEME, type Attempt, type FailureLimiter } from './failure-limiter.js';
import type { AuthRequest, RequestHeaders } from './request.js';
import { parseDdiPath, type DdiTarget } from '../ddi/path.js';
import { StoreUnavailableError, type MaybePromise, type TenantSettings, type TenantStore } from '../store/store.js';
import type { RequestLimits } from '../config/schema.js';

/** Runs a token comparison that followed a lookup that waited; see AuthContext.compareAfterWait. */
type CompareAfterWait = (run: MethodRun, method: AuthMethod, compare: () => MethodResult) => MethodResult;

/**
 * One request's pass through the methods, which is also the context that each
 * method reads. One object per request instead of a context, its closures and
 * the run's state, because every object a Check allocates costs GC time
 * inside the server (see docs/benchmarks.md).
 */
class MethodRun implements AuthContext {
  readonly headers: RequestHeaders;
  firstFailure: DenyDecision | undefined = undefined;
  /**
   * Every failure that the limiter counts, in method order. The failure that
   * names the deny may not be one of them, such as untrusted certificate
   * headers ahead of a wrong token.
   */
  countedFailures: DenyDecision[] | undefined = undefined;
  limitChecked = false;
  /** Whether the limiter has counted this run's failures already, right after a comparison that waited. */
  recorded = false;

  constructor(
    readonly request: AuthRequest,
    readonly target: DdiTarget,
    readonly tenant: TenantSettings,
    readonly store: TenantStore,
    readonly authorization: AuthorizationHeader,
    readonly attempt: Attempt,
    /** The tenant's own name and the controller id, as decisions name them. */
    readonly identity: { tenant: string; controllerId: string },
    private readonly afterWait: CompareAfterWait,
  ) {
    this.headers = request.headers;
  }

  compareAfterWait(method: AuthMethod, compare: () => MethodResult): MethodResult {
    return this.afterWait(this, method, compare);
  }
}

/**
 * Decides one request: DDI path, then tenant settings, then the methods in
 * hawkBit's order (certificate, target token, gateway token); the first
 * success wins. Every path out of here is a decision: a failure to decide is
 * a 503 deny, never an allow. With a failure limiter, a token attempt over
 * its limit is denied with 429 before any token is compared, and every
 * decision after the path check is counted. A deny is counted by every
 * failure that the limiter counts, which need not include the failure that names it.
 */
export class AuthPipeline {
  constructor(
    private readonly store: TenantStore,
    private readonly authenticators: readonly Authenticator[],
    private readonly limits: Pick<RequestLimits, 'maxHeaderBytes' | 'maxHeaderCount'>,
    private readonly limiter?: FailureLimiter,
    /**
     * Deny controller ids that are not printable ASCII. hawkBit compares its
     * controller-id header with the decoded path, and a header cannot carry
     * such an id unchanged, so hawkBit would reject what the edge allowed.
     */
    private readonly requireAsciiControllerId = false,
  ) {}

  /**
   * Decides a request. The result is a plain Decision when no step had to wait
   * (embedded store, cached Redis entries), and a promise otherwise, so that
   * the common case costs no promise and no microtask.
   */
  decide(request: AuthRequest): MaybePromise<Decision> {
    // 0. Oversized requests are denied before any parsing.
    if (request.headerBytes > this.limits.maxHeaderBytes || request.headerCount > this.limits.maxHeaderCount) {
      return deny('request_too_large');
    }

    // 1. The path names tenant and controller id; anything else is denied before any lookup.
    const parsed = parseDdiPath(request.path);
    if (!parsed.ok) {
      return deny(parsed.reason);
    }
    const target = parsed.target;
    if (this.requireAsciiControllerId && !/^[\x21-\x7e]+$/.test(target.controllerId)) {
      return deny('controller_id_not_ascii');
    }
    const source = this.limiter ? this.limiter.sourceOf(request.sourceAddress, request.headers) : request.sourceAddress;
    const attempt: Attempt = { source, tenantKey: target.tenantKey, controllerId: target.controllerId };
    const authorization = parseAuthorization(request.headers);

    // 2. Tenant settings hold the tenant's half of every method switch. A store failure, thrown or rejected, is a 503 deny.
    let result: MaybePromise<Decision>;
    try {
      const tenant = this.store.getTenant(target.tenantKey);
      result = tenant instanceof Promise ? this.#decideWhenTenantSettles(request, target, attempt, authorization, tenant) : this.#decideForTenant(request, target, attempt, authorization, tenant);
    } catch (error) {
      return storeUnavailableDeny(error, target);
    }
    return result instanceof Promise ? denyOnStoreFailure(result, target) : result;
  }

  /**
   * Decides once a tenant lookup that waited settles. The callbacks of a wait live in
   * methods of their own, because a closure inside `decide` or `#tryMethods` would make
   * V8 allocate its context on every call, for the requests that do not wait as well.
   */
  #decideWhenTenantSettles(request: AuthRequest, target: DdiTarget, attempt: Attempt, authorization: AuthorizationHeader, tenant: Promise<TenantSettings | undefined>): Promise<Decision> {
    return tenant.then((settled) => this.#decideForTenant(request, target, attempt, authorization, settled));
  }

  /** Decides a request once its tenant's settings are known; an unknown tenant is denied. */
  #decideForTenant(request: AuthRequest, target: DdiTarget, attempt: Attempt, authorization: AuthorizationHeader, tenant: TenantSettings | undefined): MaybePromise<Decision> {
    if (!tenant) {
      // The tenant name stays out of this 429: it comes from the path, and a metric label must not.
      const limited = this.rejectOverLimit(attempt, authorization, { controllerId: target.controllerId });
      return this.counted(attempt, limited ?? deny('unknown_tenant', target));
    }
    const identity = { tenant: tenant.name, controllerId: target.controllerId };
    return this.#tryMethods(new MethodRun(request, target, tenant, this.store, authorization, attempt, identity, this.#compareAfterWaitOfRun), 0);
  }

  /**
   * 3. Methods in order, from `index` on. The first failure names the deny
   * unless a later method succeeds. The certificate goes first and is never
   * limited. A token attempt meets the limiter before any comparison, and
   * again after a lookup that waited.
   */
  #tryMethods(run: MethodRun, index: number): MaybePromise<Decision> {
    const { attempt, identity } = run;
    for (let next = index; next < this.authenticators.length; next++) {
      const authenticator = this.authenticators[next];
      if (!run.limitChecked && authenticator.method !== 'certificate') {
        run.limitChecked = true;
        const limited = this.rejectOverLimit(attempt, run.authorization, identity);
        if (limited) {
          return limited;
        }
      }
      if (!authenticator.enabledFor(run.tenant)) {
        if (!run.firstFailure && authenticator.hasCredential(run)) {
          run.firstFailure = methodDeny('method_disabled', identity, authenticator.method);
        }
        continue;
      }
      const result = authenticator.authenticate(run);
      if (result instanceof Promise) {
        return this.#afterMethodSettles(run, next, result);
      }
      const decision = this.#methodDecision(run, next, result);
      if (decision) {
        return decision;
      }
    }
    const decision = run.firstFailure ?? deny(this.noCredentialReason(run), identity);
    if (!run.recorded) {
      // Every counted failure goes to its own counter, or an extra credential ahead of a token would hide the token's guesses.
      this.limiter?.record(attempt, decision, run.countedFailures ?? []);
    }
    return decision;
  }

  #afterMethodSettles(run: MethodRun, index: number, result: Promise<MethodResult>): Promise<Decision> {
    return result.then((settled) => this.#afterMethod(run, index, settled));
  }

  /** Continues with the method after `index` once an asynchronous method has settled. */
  #afterMethod(run: MethodRun, index: number, result: MethodResult): MaybePromise<Decision> {
    return this.#methodDecision(run, index, result) ?? this.#tryMethods(run, index + 1);
  }

  /** Returns the allow of a successful method, or records its failure and returns undefined to go on. */
  #methodDecision(run: MethodRun, index: number, result: MethodResult): Decision | undefined {
    const method = this.authenticators[index].method;
    if (result.outcome === 'limited') {
      return result.decision;
    }
    if (result.outcome === 'success') {
      return this.counted(run.attempt, { kind: 'allow', tenant: run.identity.tenant, controllerId: run.identity.controllerId, method });
    }
    if (result.outcome === 'failure') {
      const failure = methodDeny(result.reason, run.identity, method);
      run.firstFailure ??= failure;
      if (COUNTED_FAILURES.has(result.reason) && !run.recorded) {
        (run.countedFailures ??= []).push(failure);
      }
    }
    return undefined;
  }

  /**
   * Checks the limits again before a token comparison that followed a lookup
   * that waited, and counts its failure at once, so that the check of the next
   * waiting attempt includes it. Counting before the run ends is safe, because the
   * request has one Authorization scheme, so no method after a failed token can succeed.
   */
  #compareAfterWait(run: MethodRun, method: AuthMethod, compare: () => MethodResult): MethodResult {
    const limited = this.rejectOverLimit(run.attempt, run.authorization, run.identity);
    if (limited) {
      return { outcome: 'limited', decision: limited };
    }
    const result = compare();
    if (result.outcome === 'failure' && COUNTED_FAILURES.has(result.reason)) {
      const failure = methodDeny(result.reason, run.identity, method);
      const failures = [...(run.countedFailures ?? []), failure];
      this.limiter?.record(run.attempt, failure, failures);
      run.recorded = true;
    }
    return result;
  }

  /** #compareAfterWait for MethodRun, created once per pipeline rather than once per request. */
  readonly #compareAfterWaitOfRun: CompareAfterWait = (run, method, compare) => this.#compareAfterWait(run, method, compare);

  /** Returns a 429 deny when the request presents a token and the limiter rejects the attempt. */
  private rejectOverLimit(attempt: Attempt, authorization: AuthorizationHeader, identity: { tenant?: string; controllerId: string }): DenyDecision | undefined {
    if (!this.limiter || authorization.kind !== 'credentials') {
      return undefined;
    }
    const method = TOKEN_METHOD_BY_SCHEME.get(authorization.scheme);
    if (method === undefined) {
      return undefined;
    }
    const rejection = this.limiter.check(attempt, method);
    return rejection && methodDeny('rate_limited', identity, method, rejection.retryAfterSeconds);
  }

  /** Passes a decision to the limiter, which counts failures and remembers the sources of allows. */
  private counted(attempt: Attempt, decision: Decision): Decision {
    this.limiter?.record(attempt, decision);
    return decision;
  }

  private noCredentialReason(context: AuthContext): DenyReason {
    return context.authorization.kind === 'credentials' ? 'scheme_unsupported' : 'no_credentials';
  }
}

/** Returns the decision, or the 503 deny when it fails with a store failure. */
function denyOnStoreFailure(decision: Promise<Decision>, target: DdiTarget): Promise<Decision> {
  return decision.catch((error: unknown) => storeUnavailableDeny(error, target));
}

/** Returns the 503 deny for a store failure, and rethrows any other error. */
function storeUnavailableDeny(error: unknown, target: DdiTarget): DenyDecision {
  if (error instanceof StoreUnavailableError) {
    return deny('store_unavailable', target);
  }
  throw error;
}

/**
 * Returns a deny that names the identity and the method that decided it. The fields are
 * copied one by one, because spreading identities of two shapes took about a third of a
 * rate-limited Check's time in-process.
 */
function methodDeny(reason: DenyReason, identity: { tenant?: string; controllerId: string }, method: AuthMethod, retryAfterSeconds?: number): DenyDecision {
  return deny(reason, { tenant: identity.tenant, controllerId: identity.controllerId, method, retryAfterSeconds });
}
