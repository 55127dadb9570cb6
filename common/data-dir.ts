import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { newHookKeySecret, parseHookKeys, type HookKey } from './hook-token.js';

/**
 * Local state (no cluster): the SQLite file, the self-signed webhook certificate, the hook key.
 * `serve`, `callback` and `inject` share one default so that a workflow injected on this machine
 * makes hook calls the local callback accepts.
 */
export function resolveDataDir(flag?: string): string {
  return resolve(flag ?? process.env.KFP_NOTIFY_DATA_DIR ?? '.kfp-notify');
}

export function ensureDataDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/**
 * Hook keys from (in order) an explicit key file, or `<data dir>/hook-key`, created with a fresh
 * random key on first use (mode 0600).
 */
export function loadHookKeys(opts: { keyFile?: string; dataDir: string; create?: boolean }): HookKey[] {
  const file = opts.keyFile ?? join(opts.dataDir, 'hook-key');
  if (!existsSync(file)) {
    if (opts.keyFile || opts.create === false) throw new Error(`hook key file ${file} does not exist`);
    ensureDataDir(opts.dataDir);
    writeFileSync(file, `${newHookKeySecret()}\n`, { mode: 0o600, flag: 'wx' });
  }
  return parseHookKeys(readFileSync(file, 'utf8'));
}
