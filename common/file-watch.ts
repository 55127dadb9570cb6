import { watch, statSync, type FSWatcher } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Logger } from './logger.js';
import { errorMessage } from './error-message.js';

export interface FileWatch {
  /** Looks at the files now (without waiting for the next poll) and handles a change at once. */
  check(): void;
  close(): void;
}

export interface WatchOptions {
  /** The stat fallback's period. fs.watch misses changes on some volumes (and on symlink targets). */
  pollMs?: number;
  /** A rotation writes several files; wait for the writes to settle before reading them. */
  debounceMs?: number;
  logger?: Logger;
}

const DEFAULT_POLL_MS = 10_000;
const DEFAULT_DEBOUNCE_MS = 100;

// stat follows symlinks: when Kubernetes swaps a Secret volume's `..data` link, the inode changes.
function fingerprint(files: readonly string[]): string {
  return files
    .map((f) => {
      try {
        const s = statSync(f);
        return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
      } catch {
        return 'missing';
      }
    })
    .join('|');
}

/**
 * Calls `onChange` when any of `files` changes. Watches their directories (a Kubernetes Secret or
 * ConfigMap volume replaces files by renaming a `..data` symlink in that directory, which a watch on the
 * file itself would never see) and stats the files every `pollMs` as a fallback.
 */
export function watchFiles(files: readonly string[], onChange: () => void, opts: WatchOptions = {}): FileWatch {
  const paths = files.map((f) => resolve(f));
  let last = fingerprint(paths);
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const check = (): void => {
    if (closed) return;
    const now = fingerprint(paths);
    if (now === last) return;
    last = now;
    onChange();
  };
  const soon = (): void => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(check, opts.debounceMs ?? DEFAULT_DEBOUNCE_MS);
    timer.unref();
  };

  const watchers: FSWatcher[] = [];
  for (const dir of new Set(paths.map((p) => dirname(p)))) {
    try {
      const w = watch(dir, { persistent: false }, soon);
      w.on('error', (err) => opts.logger?.warn({ dir, err: err.message }, 'file watch failed; relying on polling'));
      watchers.push(w);
    } catch (err) {
      opts.logger?.warn({ dir, err: errorMessage(err) }, 'cannot watch directory; relying on polling');
    }
  }
  const poll = setInterval(check, opts.pollMs ?? DEFAULT_POLL_MS);
  poll.unref();

  return {
    check,
    close() {
      closed = true;
      clearInterval(poll);
      if (timer) clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}

