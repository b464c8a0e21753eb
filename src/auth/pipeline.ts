import type { Authenticator, AuthContext } from './authenticator.js';
import { parseAuthorization } from './authorization-header.js';
import { deny, type Decision, type DenyDecision, type DenyReason } from './decision.js';
import type { AuthRequest } from './request.js';
import { parseDdiPath } from '../ddi/path.js';
import { StoreUnavailableError, type TenantStore } from '../store/store.js';
import type { RequestLimits } from '../config/schema.js';

/**
 * Decides one request: DDI path, then tenant settings, then the methods in
 * hawkBit's order (certificate, target token, gateway token); the first
 * success wins. Every path out of here is a decision: a failure to decide is
 * a 503 deny, never an allow.
 */
export class AuthPipeline {
  constructor(
    private readonly store: TenantStore,
    private readonly authenticators: readonly Authenticator[],
    private readonly limits: Pick<RequestLimits, 'maxHeaderBytes' | 'maxHeaderCount'>,
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
    const known = { tenant: target.tenant, controllerId: target.controllerId };

    try {
      // 2. Tenant settings hold the tenant's half of every method switch.
      const tenant = await this.store.getTenant(target.tenantKey);
      if (!tenant) {
        return deny('unknown_tenant', known);
      }
      const identity = { tenant: tenant.name, controllerId: target.controllerId };
      const context: AuthContext = {
        request,
        headers: request.headers,
        target,
        tenant,
        store: this.store,
        authorization: parseAuthorization(request.headers),
      };

      // 3. Methods in order. The first failure names the deny unless a later method succeeds.
      let firstFailure: DenyDecision | undefined;
      for (const authenticator of this.authenticators) {
        if (!authenticator.enabledFor(tenant)) {
          if (!firstFailure && authenticator.hasCredential(context)) {
            firstFailure = deny('method_disabled', { ...identity, method: authenticator.method });
          }
          continue;
        }
        const result = await authenticator.authenticate(context);
        if (result.outcome === 'success') {
          return { kind: 'allow', ...identity, method: authenticator.method };
        }
        if (result.outcome === 'failure' && !firstFailure) {
          firstFailure = deny(result.reason, { ...identity, method: authenticator.method });
        }
      }
      return firstFailure ?? deny(this.noCredentialReason(context), identity);
    } catch (error) {
      if (error instanceof StoreUnavailableError) {
        return deny('store_unavailable', known);
      }
      throw error;
    }
  }

  private noCredentialReason(context: AuthContext): DenyReason {
    return context.authorization.kind === 'credentials' ? 'scheme_unsupported' : 'no_credentials';
  }
}
