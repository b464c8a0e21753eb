import type { AuthContext } from './authenticator.js';
import type { TenantSettings } from '../store/store.js';
import { TokenAuthenticator, type StoredDigest } from './token-method.js';

/** `Authorization: GatewayToken <key>`, compared with the tenant's gateway key; valid for any controller id of the tenant. */
export class GatewayTokenAuthenticator extends TokenAuthenticator {
  readonly method = 'gateway-token' as const;
  protected readonly scheme = 'gatewaytoken';

  protected tenantEnabled(tenant: TenantSettings): boolean {
    return tenant.gatewayTokenEnabled;
  }

  protected storedDigest(context: AuthContext): StoredDigest {
    // An empty or missing key never authenticates.
    return context.tenant.gatewayKeyDigest ?? { outcome: 'failure', reason: 'token_missing' };
  }
}
