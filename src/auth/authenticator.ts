import type { AuthMethod, DenyDecision, DenyReason } from './decision.js';
import type { DdiTarget } from '../ddi/path.js';
import type { MaybePromise, TenantSettings, TenantStore } from '../store/store.js';
import type { AuthorizationHeader } from './authorization-header.js';
import type { AuthRequest, RequestHeaders } from './request.js';

/** Outcome of one method for a request. */
export type MethodResult =
  | { outcome: 'success' }
  /** The request carried this method's credential and it failed. */
  | { outcome: 'failure'; reason: DenyReason }
  /** The request carried no credential for this method. */
  | { outcome: 'absent' }
  /** The failure limits rejected the attempt before its credential was compared. */
  | { outcome: 'limited'; decision: DenyDecision };

export interface AuthContext {
  request: AuthRequest;
  headers: RequestHeaders;
  target: DdiTarget;
  tenant: TenantSettings;
  store: TenantStore;
  /** The request's `Authorization` header, parsed once for every method. */
  authorization: AuthorizationHeader;
  /**
   * Runs a token comparison that follows a lookup that waited. The failure
   * limits are checked again first, and a failure is counted at once, because
   * concurrent attempts all pass the first check before any lookup returns.
   */
  compareAfterWait(method: AuthMethod, compare: () => MethodResult): MethodResult;
}

/** One authentication method; the pipeline tries them in hawkBit's order and the first success wins. */
export interface Authenticator {
  readonly method: AuthMethod;
  /** Whether the system-wide switch and the tenant's own key both enable this method. */
  enabledFor(tenant: TenantSettings): boolean;
  /** Whether the request carries this method's credential; decides `method_disabled` versus `no_credentials`. */
  hasCredential(context: AuthContext): boolean;
  /** Returns the result at once when it needs no lookup that waits, and a promise otherwise. */
  authenticate(context: AuthContext): MaybePromise<MethodResult>;
}
