import type { ServiceConfig } from './config/schema.js';

/** Configuration keys that a running service cannot change; a reload keeps them and reports them. */
const RESTART_ONLY: readonly (keyof ServiceConfig)[] = ['workers', 'grpc', 'http', 'store', 'metrics', 'tokenDigestKey'];

/** Returns the restart-only keys whose value differs between two configurations. */
export function restartOnlyChanges(current: ServiceConfig, next: ServiceConfig): string[] {
  return RESTART_ONLY.filter((key) => JSON.stringify(current[key]) !== JSON.stringify(next[key]));
}
