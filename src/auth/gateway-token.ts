import type { Authenticator, AuthContext, MethodResult } from './authenticator.js';
import type { TenantSettings } from '../store/store.js';
import type { TokenDigester } from '../store/token-digest.js';
import { carriesScheme, tokenFor } from './token-method.js';

const SCHEME = 'gatewaytoken';

/** `Authorization: GatewayToken <key>`, compared with the tenant's gateway key; valid for any controller id of the tenant. */
export class GatewayTokenAuthenticator implements Authenticator {
  readonly method = 'gateway-token' as const;

  constructor(
    private readonly systemEnabled: boolean,
    private readonly digester: TokenDigester,
  ) {}

  enabledFor(tenant: TenantSettings): boolean {
    return this.systemEnabled && tenant.gatewayTokenEnabled;
  }

  hasCredential(context: AuthContext): boolean {
    return carriesScheme(context, SCHEME);
  }

  async authenticate(context: AuthContext): Promise<MethodResult> {
    const token = tokenFor(context, SCHEME);
    if (!('credential' in token)) {
      return token;
    }
    // An empty or missing key never authenticates.
    if (!context.tenant.gatewayKeyDigest) {
      return { outcome: 'failure', reason: 'token_missing' };
    }
    if (!this.digester.matches(token.credential, context.tenant.gatewayKeyDigest)) {
      return { outcome: 'failure', reason: 'token_mismatch' };
    }
    return { outcome: 'success' };
  }
}
