import { accessSync, constants, mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
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

/**
 * The data dir cannot be created or written: the machine's problem, not the input's. Every command
 * prints it as one line naming the path and exits 1 (cli/main.ts), whichever file it was writing.
 */
export class DataDirError extends Error {
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    super(`data dir ${path} is not writable: ${fsReason(cause)}`);
    this.name = 'DataDirError';
  }
}

const FS_REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  ENOTDIR: 'a parent is not a directory',
  EEXIST: 'exists and is not a directory',
  EDQUOT: 'disk quota exceeded',
};

function fsReason(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') return `${FS_REASONS[code] ?? code.toLowerCase()} (${code})`;
  return err instanceof Error ? err.message : String(err);
}

export function ensureDataDir(dir: string): string {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new DataDirError(dir, err);
  }
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
    try {
      writeFileSync(file, `${fresh()}\n`, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      throw new DataDirError(opts.dataDir, err);
    }
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
