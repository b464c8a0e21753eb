import { stat, statSync, type Stats } from 'node:fs';

/** How often the configuration file is checked for changes, in milliseconds. */
export const CONFIG_POLL_INTERVAL_MS = 1000;

/** The parts of a file's status that show a change. */
export interface FileState {
  mtimeMs: number;
  size: number;
  ino: number;
}

/** Returns the file's state now, or undefined when it cannot be read. */
export function readFileState(path: string): FileState | undefined {
  try {
    return fileState(statSync(path));
  } catch {
    return undefined;
  }
}

/**
 * Calls `onChange` when the file at `path` differs from `baseline`, its state
 * when it was read, or from its state at the first check when there is no
 * baseline. Comparing with the state at read time also catches a change made
 * before the watch started.
 * The file's status is polled instead of watched with inotify, because
 * Kubernetes updates a mounted ConfigMap by swapping a symlink, which an
 * inotify watch on the old file never reports.
 */
export function watchConfigFile(path: string, onChange: () => void, baseline?: FileState, intervalMs = CONFIG_POLL_INTERVAL_MS): () => void {
  let last = baseline;
  let checking = false;
  const check = (): void => {
    if (checking) {
      return;
    }
    checking = true;
    stat(path, (error, stats) => {
      checking = false;
      if (error) {
        // A file being replaced may be missing for a moment, so the next check reads the new one.
        return;
      }
      const current = fileState(stats);
      const changed = last !== undefined && (current.mtimeMs !== last.mtimeMs || current.size !== last.size || current.ino !== last.ino);
      last = current;
      if (changed) {
        onChange();
      }
    });
  };
  const timer = setInterval(check, intervalMs);
  timer.unref();
  check();
  return () => clearInterval(timer);
}

function fileState(stats: Stats): FileState {
  return { mtimeMs: stats.mtimeMs, size: stats.size, ino: stats.ino };
}
