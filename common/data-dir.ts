import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
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
 * A secret kept in a file: the explicit file if one was named (it must exist), else `<data dir>/<name>`,
 * created with `fresh()` on first use (mode 0600) unless `create` is false. Returns the file's text.
 */
function readOrCreateSecret(opts: { file?: string; dataDir: string; create?: boolean }, name: string, what: string, fresh: () => string): string {
  const file = opts.file ?? join(opts.dataDir, name);
  if (!existsSync(file)) {
    if (opts.file || opts.create === false) throw new Error(`${what} file ${file} does not exist`);
    ensureDataDir(opts.dataDir);
    writeFileSync(file, `${fresh()}\n`, { mode: 0o600, flag: 'wx' });
  }
  return readFileSync(file, 'utf8');
}

/** Hook keys from an explicit key file, or `<data dir>/hook-key`, created with a fresh random key on first use. */
export function loadHookKeys(opts: { keyFile?: string; dataDir: string; create?: boolean }): HookKey[] {
  return parseHookKeys(readOrCreateSecret({ ...opts, file: opts.keyFile }, 'hook-key', 'hook key', newHookKeySecret));
}

export const ADMIN_TOKEN_FILE = 'admin-token';

export function adminTokenPath(dataDir: string): string {
  return join(dataDir, ADMIN_TOKEN_FILE);
}

/** The callback's admin API token: an explicit file, or `<data dir>/admin-token`, created on first use. */
export function loadAdminToken(opts: { file?: string; dataDir: string; create?: boolean }): string {
  const token = readOrCreateSecret(opts, ADMIN_TOKEN_FILE, 'admin token', () => randomBytes(32).toString('base64url')).trim();
  if (token.length < 16) throw new Error(`admin token in ${opts.file ?? adminTokenPath(opts.dataDir)} is shorter than 16 characters`);
  return token;
}
