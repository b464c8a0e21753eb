/** Authentication method of an allowed device; also the value of the auth-method identity header. */
export type AuthMethod = 'certificate' | 'target-token' | 'gateway-token';

/**
 * Stable reason codes for a deny. Logs, metrics and tests use them; the client
 * sees only the HTTP status.
 */
export const DENY_REASONS = [
  // path rules (HTTP 403)
  'path_not_ddi',
  'path_not_canonical',
  'controller_id_invalid',
  'controller_id_not_ascii',
  'tenant_invalid',
  // credentials (HTTP 401)
  'no_credentials',
  'authorization_malformed',
  'authorization_repeated',
  'scheme_unsupported',
  'unknown_tenant',
  'unknown_target',
  'method_disabled',
  'token_missing',
  'token_mismatch',
  'certificate_missing',
  'certificate_invalid',
  'cn_missing',
  'cn_multiple',
  'cn_mismatch',
  'issuer_not_trusted',
  'xfcc_untrusted',
  'xfcc_malformed',
  'xfcc_multiple_elements',
  'proxy_headers_invalid',
  'proxy_untrusted',
  'certificate_too_large',
  'certificate_revoked',
  'client_cert_malformed',
  'certificate_expired',
  'certificate_not_yet_valid',
  'certificate_usage_invalid',
  'ca_not_pinned',
  'chain_too_long',
  // request shape (HTTP 403)
  'request_too_large',
  // too many failed attempts (HTTP 429)
  'rate_limited',
  // cannot decide (HTTP 503)
  'store_unavailable',
  'deadline_exceeded',
  'internal_error',
] as const;

export type DenyReason = (typeof DENY_REASONS)[number];

export type DenyHttpStatus = 401 | 403 | 429 | 503;

export interface Identity {
  /** Tenant name as configured, for example `DEFAULT`. */
  tenant: string;
  /** Controller id, percent-decoded from the path. */
  controllerId: string;
  method: AuthMethod;
}

export interface AllowDecision extends Identity {
  kind: 'allow';
}

export interface DenyDecision {
  kind: 'deny';
  httpStatus: DenyHttpStatus;
  reason: DenyReason;
  /** Tenant and controller id when the path was valid, for the decision log only. */
  tenant?: string;
  controllerId?: string;
  /** Method whose failure decided the deny, for the decision log only. */
  method?: AuthMethod;
  /** Seconds the client should wait, sent as `Retry-After`; set on `rate_limited` denies. */
  retryAfterSeconds?: number;
}

export type Decision = AllowDecision | DenyDecision;

/** HTTP status for each reason: 403 for path and request shape, 429 for too many failures, 503 when undecidable, else 401. */
export function httpStatusFor(reason: DenyReason): DenyHttpStatus {
  switch (reason) {
    case 'path_not_ddi':
    case 'path_not_canonical':
    case 'controller_id_invalid':
    case 'controller_id_not_ascii':
    case 'tenant_invalid':
    case 'request_too_large':
      return 403;
    case 'rate_limited':
      return 429;
    case 'store_unavailable':
    case 'deadline_exceeded':
    case 'internal_error':
      return 503;
    default:
      return 401;
  }
}

export function deny(reason: DenyReason, context: Omit<DenyDecision, 'kind' | 'reason' | 'httpStatus'> = {}): DenyDecision {
  // Fields written out rather than spread: this runs on every deny, and a spread costs several times more.
  return {
    kind: 'deny',
    httpStatus: httpStatusFor(reason),
    reason,
    tenant: context.tenant,
    controllerId: context.controllerId,
    method: context.method,
    retryAfterSeconds: context.retryAfterSeconds,
  };
}
