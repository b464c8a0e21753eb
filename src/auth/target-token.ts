import type { AuthContext } from './authenticator.js';
import type { DenyReason } from './decision.js';
import type { TenantSettings } from '../store/store.js';
import { TokenAuthenticator } from './token-method.js';

/** `Authorization: TargetToken <token>`, compared with the security token stored for the controller id. */
export class TargetTokenAuthenticator extends TokenAuthenticator {
  readonly method = 'target-token' as const;
  protected readonly scheme = 'targettoken';

  protected tenantEnabled(tenant: TenantSettings): boolean {
    return tenant.targetTokenEnabled;
  }

  protected async storedDigest(context: AuthContext): Promise<Buffer | { outcome: 'failure'; reason: DenyReason }> {
    const target = await context.store.getTarget(context.target.tenantKey, context.target.controllerId);
    if (!target) {
      return { outcome: 'failure', reason: 'unknown_target' };
    }
    // A target without a token never authenticates by token.
    return target.securityTokenDigest ?? { outcome: 'failure', reason: 'token_missing' };
  }
}
