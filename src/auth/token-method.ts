import type { AuthContext, MethodResult } from './authenticator.js';
import type { DenyReason } from './decision.js';

/**
 * Returns the credential for a token scheme, or the result to report when the
 * request carries none or an unusable Authorization header.
 */
export function tokenFor(context: AuthContext, scheme: string): { credential: string } | MethodResult {
  const authorization = context.authorization;
  if (authorization.kind === 'absent') {
    return { outcome: 'absent' };
  }
  if (authorization.kind === 'invalid') {
    return { outcome: 'failure', reason: authorization.reason as DenyReason };
  }
  if (authorization.scheme !== scheme) {
    return { outcome: 'absent' };
  }
  return { credential: authorization.credential };
}

/** Whether the request's Authorization header uses the given scheme (lower-case). */
export function carriesScheme(context: AuthContext, scheme: string): boolean {
  return context.authorization.kind === 'credentials' && context.authorization.scheme === scheme;
}
