import type { Authenticator, AuthContext, MethodResult } from './authenticator.js';
import type { TenantSettings } from '../store/store.js';
import type { TokenDigester } from '../store/token-digest.js';
import { carriesScheme, tokenFor } from './token-method.js';

const SCHEME = 'targettoken';

/** `Authorization: TargetToken <token>`, compared with the security token stored for the controller id. */
export class TargetTokenAuthenticator implements Authenticator {
  readonly method = 'target-token' as const;

  constructor(
    private readonly systemEnabled: boolean,
    private readonly digester: TokenDigester,
  ) {}

  enabledFor(tenant: TenantSettings): boolean {
    return this.systemEnabled && tenant.targetTokenEnabled;
  }

  hasCredential(context: AuthContext): boolean {
    return carriesScheme(context, SCHEME);
  }

  async authenticate(context: AuthContext): Promise<MethodResult> {
    const token = tokenFor(context, SCHEME);
    if (!('credential' in token)) {
      return token;
    }
    const target = await context.store.getTarget(context.target.tenantKey, context.target.controllerId);
    if (!target) {
      return { outcome: 'failure', reason: 'unknown_target' };
    }
    if (!target.securityTokenDigest) {
      return { outcome: 'failure', reason: 'token_missing' };
    }
    if (!this.digester.matches(token.credential, target.securityTokenDigest)) {
      return { outcome: 'failure', reason: 'token_mismatch' };
    }
    return { outcome: 'success' };
  }
}
