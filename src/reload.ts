import type { RunningConfig } from './config/schema.js';

/** Configuration keys that a running service cannot change; a reload keeps them and reports them. */
const RESTART_ONLY: readonly (keyof RunningConfig)[] = ['workers', 'grpc', 'http', 'store', 'metrics', 'tokenDigestKey'];

/** Returns the restart-only keys whose value differs between two configurations. */
export function restartOnlyChanges(current: RunningConfig, next: RunningConfig): string[] {
  const changed: string[] = RESTART_ONLY.filter((key) => JSON.stringify(current[key]) !== JSON.stringify(next[key]));
  // The log levels reload, but the destination is opened once at start.
  if (current.log.destination !== next.log.destination) {
    changed.push('log.destination');
  }
  return changed;
}
