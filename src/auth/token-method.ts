import type { Authenticator, AuthContext, MethodResult } from './authenticator.js';
import type { AuthMethod, DenyReason } from './decision.js';
import type { MaybePromise, TenantSettings } from '../store/store.js';
import type { TokenDigester } from '../store/token-digest.js';

/** The stored digest to compare with, or the failure when there is none. */
export type StoredDigest = Buffer | { outcome: 'failure'; reason: DenyReason };

const SUCCESS: MethodResult = Object.freeze({ outcome: 'success' });
const TOKEN_MISMATCH: MethodResult = Object.freeze({ outcome: 'failure', reason: 'token_mismatch' });

/**
 * Shared flow of the `Authorization` token methods: read the credential of
 * one scheme, look up the stored digest, compare in constant time. A subclass
 * names its scheme and tenant switch and says where the digest is stored.
 */
export abstract class TokenAuthenticator implements Authenticator {
  abstract readonly method: AuthMethod;
  /** Lower-case `Authorization` scheme that carries this method's credential. */
  protected abstract readonly scheme: string;

  constructor(
    private readonly systemEnabled: boolean,
    private readonly digester: TokenDigester,
  ) {}

  /** Returns the tenant's own switch of this method. */
  protected abstract tenantEnabled(tenant: TenantSettings): boolean;

  /** Returns the stored digest to compare with, or the failure when there is none. */
  protected abstract storedDigest(context: AuthContext): MaybePromise<StoredDigest>;

  enabledFor(tenant: TenantSettings): boolean {
    return this.systemEnabled && this.tenantEnabled(tenant);
  }

  hasCredential(context: AuthContext): boolean {
    return context.authorization.kind === 'credentials' && context.authorization.scheme === this.scheme;
  }

  authenticate(context: AuthContext): MaybePromise<MethodResult> {
    const authorization = context.authorization;
    if (authorization.kind === 'absent') {
      return { outcome: 'absent' };
    }
    if (authorization.kind === 'invalid') {
      return { outcome: 'failure', reason: authorization.reason };
    }
    if (authorization.scheme !== this.scheme) {
      return { outcome: 'absent' };
    }

    const credential = authorization.credential;
    const stored = this.storedDigest(context);
    if (!(stored instanceof Promise)) {
      return this.#compare(credential, stored);
    }
    return this.#compareWhenStored(context, credential, stored);
  }

  /** Compares once a lookup that waited settles. A closure inside `authenticate` would make V8 allocate its context on every call. */
  #compareWhenStored(context: AuthContext, credential: string, stored: Promise<StoredDigest>): Promise<MethodResult> {
    return stored.then((settled) => context.compareAfterWait(this.method, () => this.#compare(credential, settled)));
  }

  #compare(credential: string, stored: StoredDigest): MethodResult {
    if (!Buffer.isBuffer(stored)) {
      return stored;
    }
    if (!this.digester.matches(credential, stored)) {
      return TOKEN_MISMATCH;
    }
    return SUCCESS;
  }
}
