import type { Authenticator, AuthContext } from './authenticator.js';
import { parseAuthorization, type AuthorizationHeader } from './authorization-header.js';
import { deny, type Decision, type DenyDecision, type DenyReason } from './decision.js';
import { TOKEN_METHOD_BY_SCHEME, type Attempt, type FailureLimiter } from './failure-limiter.js';
import type { AuthRequest } from './request.js';
import { parseDdiPath } from '../ddi/path.js';
import { StoreUnavailableError, type TenantStore } from '../store/store.js';
import type { RequestLimits } from '../config/schema.js';

/**
 * Decides one request: DDI path, then tenant settings, then the methods in
 * hawkBit's order (certificate, target token, gateway token); the first
 * success wins. Every path out of here is a decision: a failure to decide is
 * a 503 deny, never an allow. With a failure limiter, a token attempt over
 * its limit is denied with 429 before any token is compared, and every
 * decision after the path check is counted.
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

  async decide(request: AuthRequest): Promise<Decision> {
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
    const known = { tenant: target.tenant, controllerId: target.controllerId };
    const attempt: Attempt = { source: request.sourceAddress, tenantKey: target.tenantKey, controllerId: target.controllerId };
    const authorization = parseAuthorization(request.headers);

    try {
      // 2. Tenant settings hold the tenant's half of every method switch.
      const tenant = await this.store.getTenant(target.tenantKey);
      if (!tenant) {
        // The tenant name stays out of this 429: it comes from the path, and a metric label must not.
        const limited = this.rejectOverLimit(attempt, authorization, { controllerId: target.controllerId });
        return this.counted(attempt, limited ?? deny('unknown_tenant', known));
      }
      const identity = { tenant: tenant.name, controllerId: target.controllerId };
      const context: AuthContext = {
        request,
        headers: request.headers,
        target,
        tenant,
        store: this.store,
        authorization,
      };

      // 3. Methods in order. The first failure names the deny unless a later method succeeds.
      // The certificate goes first and is never limited. A token attempt meets the limiter once, before any comparison.
      let firstFailure: DenyDecision | undefined;
      let limitChecked = false;
      for (const authenticator of this.authenticators) {
        if (!limitChecked && authenticator.method !== 'certificate') {
          limitChecked = true;
          const limited = this.rejectOverLimit(attempt, authorization, identity);
          if (limited) {
            return limited;
          }
        }
        if (!authenticator.enabledFor(tenant)) {
          if (!firstFailure && authenticator.hasCredential(context)) {
            firstFailure = deny('method_disabled', { ...identity, method: authenticator.method });
          }
          continue;
        }
        const result = await authenticator.authenticate(context);
        if (result.outcome === 'success') {
          return this.counted(attempt, { kind: 'allow', ...identity, method: authenticator.method });
        }
        if (result.outcome === 'failure' && !firstFailure) {
          firstFailure = deny(result.reason, { ...identity, method: authenticator.method });
        }
      }
      return this.counted(attempt, firstFailure ?? deny(this.noCredentialReason(context), identity));
    } catch (error) {
      if (error instanceof StoreUnavailableError) {
        return deny('store_unavailable', known);
      }
      throw error;
    }
  }

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
    return rejection && deny('rate_limited', { ...identity, method, retryAfterSeconds: rejection.retryAfterSeconds });
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
