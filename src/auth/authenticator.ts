import type { AuthMethod, DenyReason } from './decision.js';
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
  | { outcome: 'absent' };

export interface AuthContext {
  request: AuthRequest;
  headers: RequestHeaders;
  target: DdiTarget;
  tenant: TenantSettings;
  store: TenantStore;
  /** The request's `Authorization` header, parsed once for every method. */
  authorization: AuthorizationHeader;
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
