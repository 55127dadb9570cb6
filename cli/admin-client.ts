import { request } from 'undici';
import { loadAdminToken, resolveDataDir } from '../common/data-dir.js';
import { errorMessage } from '../common/error-message.js';
import { EXIT_FAILURE, EXIT_USAGE, UsageError, parseOrExit, type CliIo } from './io.js';

/**
 * The admin API of a running callback, as the operator commands (dlq, subscriber) reach it: the URL
 * and token flags they share, and one call that turns every failure into a line to print.
 */

export const ADMIN_FLAGS_HELP = `  --url U               the callback (default http://127.0.0.1:8080)
  --data-dir D          where the admin token is (default ./.kfp-notify or $KFP_NOTIFY_DATA_DIR)
  --admin-token-file F  the admin token file (default <data dir>/admin-token)`;

export const ADMIN_OPTIONS = {
  url: { type: 'string', default: 'http://127.0.0.1:8080' },
  'data-dir': { type: 'string' },
  'admin-token-file': { type: 'string' },
} as const;

export interface AdminTarget {
  url: string;
  dataDir: string;
  adminTokenFile?: string;
}

export function adminTarget(v: { url: string; 'data-dir'?: string; 'admin-token-file'?: string }, env: NodeJS.ProcessEnv): AdminTarget {
  try {
    const u = new URL(v.url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
  } catch {
    throw new UsageError(`--url must be an http(s) URL (got ${v.url})`);
  }
  return {
    url: v.url.replace(/\/+$/, ''),
    dataDir: resolveDataDir(v['data-dir'] ?? env.KFP_NOTIFY_DATA_DIR),
    ...(v['admin-token-file'] ? { adminTokenFile: v['admin-token-file'] } : {}),
  };
}

/** The token, or a UsageError (a missing token file is the user's to name). */
export function adminToken(t: AdminTarget): string {
  try {
    return loadAdminToken({ dataDir: t.dataDir, create: false, ...(t.adminTokenFile ? { file: t.adminTokenFile } : {}) });
  } catch (err) {
    throw new UsageError(`${errorMessage(err)} (use --admin-token-file or --data-dir)`);
  }
}

/** The API answered with an error, or could not be reached. `notFound`: the thing named does not exist (exit 2). */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly notFound = false,
  ) {
    super(message);
  }
}

export async function adminCall(t: AdminTarget, token: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  let res;
  try {
    res = await request(`${t.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    throw new ApiError(`cannot reach the callback at ${t.url}: ${errorMessage(err)}`);
  }
  const text = await res.body.text();
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    data = undefined;
  }
  if (res.statusCode >= 400) {
    const reason = (data as { error?: unknown } | undefined)?.error;
    if (res.statusCode === 404 && typeof reason === 'string') throw new ApiError(reason, true);
    throw new ApiError(`${method} ${path}: HTTP ${res.statusCode}${typeof reason === 'string' ? `: ${reason}` : ''}`);
  }
  if (data === undefined) throw new ApiError(`${method} ${path}: the answer is not JSON`);
  return data;
}

/** How an operator command ends on a failure: a missing token or a name that does not exist is 2, the rest 1. */
export function adminFailure(command: string, io: CliIo, err: unknown): number {
  if (!(err instanceof UsageError) && !(err instanceof ApiError)) throw err;
  io.stderr.write(`kfp-notify ${command}: ${err.message}\n`);
  return err instanceof UsageError || err.notFound ? EXIT_USAGE : EXIT_FAILURE;
}

/**
 * The frame every admin command shares: parse (usage errors and --help as every command answers them),
 * read the admin token, act, and turn any failure of the call into one line and its exit code.
 */
export async function runAdminCommand<F extends { target: AdminTarget }>(
  command: string,
  usage: string,
  io: CliIo,
  parse: () => F | 'help',
  act: (flags: F, token: string) => Promise<number>,
): Promise<number> {
  const parsed = parseOrExit(command, usage, io, parse);
  if ('exit' in parsed) return parsed.exit;
  try {
    return await act(parsed.flags, adminToken(parsed.flags.target));
  } catch (err) {
    return adminFailure(command, io, err);
  }
}
