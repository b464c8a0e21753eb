import { unwatchFile, watchFile, type Stats } from 'node:fs';

/** How often the configuration file is checked for changes, in milliseconds. */
export const CONFIG_POLL_INTERVAL_MS = 1000;

/**
 * Calls `onChange` when the file at `path` changes. It polls the file's status
 * instead of using inotify, because Kubernetes updates a mounted ConfigMap by
 * swapping a symlink, which an inotify watch on the old file never reports.
 */
export function watchConfigFile(path: string, onChange: () => void, intervalMs = CONFIG_POLL_INTERVAL_MS): () => void {
  const listener = (current: Stats, previous: Stats): void => {
    if (current.mtimeMs !== previous.mtimeMs || current.size !== previous.size || current.ino !== previous.ino) {
      onChange();
    }
  };
  watchFile(path, { interval: intervalMs, persistent: false }, listener);
  return () => unwatchFile(path, listener);
}
