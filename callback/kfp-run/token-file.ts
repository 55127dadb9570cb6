import { existsSync, readFileSync } from 'node:fs';
import { errorMessage } from '../../common/error-message.js';
import { watchFiles, type FileWatch } from '../../common/file-watch.js';
import type { Logger } from '../../common/logger.js';

/**
 * Bearer tokens from files: a projected ServiceAccount token (audience pipelines.kubeflow.org) that the
 * kubelet rewrites well before it expires. Each file is read once and again only when it changes:
 * the directory watch (a projected volume swaps a `..data` symlink) marks it, and every use checks
 * the file's fingerprint first, so a rotation is used from the next call on, without a poll's delay.
 * Tokens are never logged; errors name the file only.
 */

/** Where KFP's SDK looks for the token in a pod (KF_PIPELINES_SA_TOKEN_PATH overrides it). */
export const DEFAULT_KFP_TOKEN_FILE = '/var/run/secrets/kubeflow/pipelines/token';

export interface TokenFiles {
  /** The token in `file`, or an Error naming the file (missing, unreadable, empty). */
  token(file: string): string | Error;
  close(): void;
}

export function tokenFiles(log?: Logger): TokenFiles {
  const cache = new Map<string, { watch: FileWatch; token?: string }>();
  return {
    token(file) {
      let entry = cache.get(file);
      if (!entry) {
        const fresh: { watch: FileWatch; token?: string } = { watch: watchFiles([file], () => (fresh.token = undefined), log ? { logger: log } : {}) };
        entry = fresh;
        cache.set(file, entry);
      }
      entry.watch.check();
      if (entry.token === undefined) {
        try {
          const t = readFileSync(file, 'utf8').trim();
          if (t === '') return new Error(`token file ${file} is empty`);
          entry.token = t;
          log?.info({ file }, 'KFP token file read');
        } catch (err) {
          return new Error(`token file ${file} cannot be read: ${errorMessage(err).replace(/^[A-Z]+: /, '')}`);
        }
      }
      return entry.token;
    },
    close() {
      for (const e of cache.values()) e.watch.close();
      cache.clear();
    },
  };
}

/** The token file to use when a subscriber names none: the SDK's, if this pod has one mounted. */
export function defaultTokenFile(env: Readonly<Record<string, string | undefined>>): string | undefined {
  const file = env.KF_PIPELINES_SA_TOKEN_PATH || DEFAULT_KFP_TOKEN_FILE;
  return existsSync(file) ? file : undefined;
}
