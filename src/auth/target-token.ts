import type { AuthContext } from './authenticator.js';
import type { MaybePromise, TargetCredentials, TenantSettings } from '../store/store.js';
import { TokenAuthenticator, type StoredDigest } from './token-method.js';

/** `Authorization: TargetToken <token>`, compared with the security token stored for the controller id. */
export class TargetTokenAuthenticator extends TokenAuthenticator {
  readonly method = 'target-token' as const;
  protected readonly scheme = 'targettoken';

  protected tenantEnabled(tenant: TenantSettings): boolean {
    return tenant.targetTokenEnabled;
  }

  protected storedDigest(context: AuthContext): MaybePromise<StoredDigest> {
    const target = context.store.getTarget(context.target.tenantKey, context.target.controllerId);
    return target instanceof Promise ? target.then(digestOf) : digestOf(target);
  }
}

/** Returns a target's token digest, or the failure when the target or its token is missing. */
function digestOf(target: TargetCredentials | undefined): StoredDigest {
  if (!target) {
    return { outcome: 'failure', reason: 'unknown_target' };
  }
  // A target without a token never authenticates by token.
  return target.securityTokenDigest ?? { outcome: 'failure', reason: 'token_missing' };
}
