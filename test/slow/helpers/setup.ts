import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll } from 'vitest';
import { killAll } from './callback-process.js';
import { subscriberSet } from './subscriber-server.js';
import { hookKeyFromSecret, newHookKeySecret, type HookKey } from '../../../common/hook-token.js';

/**
 * Data dirs, subscriber files and admin calls for the slow callback tests. The hook key is written
 * before the process starts (so the test can mint tokens, and search the logs for the key itself).
 */

export interface Workspace {
  root: string;
  /** A fresh data dir under root (or under `parent`), with a fresh hook key in `<dir>/hook-key`. */
  dataDir(name: string, parent?: string): { dir: string; key: HookKey; keySecret: string };
  /** The admin token a callback created in `dir` (remembered for `secrets`). */
  adminToken(dir: string): string;
  /** Every hook key and admin token of this workspace's data dirs, by a name for error messages. */
  secrets(): Record<string, string>;
  /** Writes the subscribers file (ConfigMap `data` as JSON, which is YAML) and, if given, the secrets file. */
  subscribers(name: string, data: Record<string, unknown>, secrets?: Record<string, Record<string, string>>): string[];
  cleanup(): void;
}

export function workspace(prefix: string): Workspace {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const known: Record<string, string> = {};
  const dirs: string[] = [];
  const remember = (dir: string): string => {
    const token = readFileSync(join(dir, 'admin-token'), 'utf8').trim();
    known[`admin token of ${dir}`] = token;
    return token;
  };
  return {
    root,
    dataDir(name, parent = root) {
      const dir = join(parent, name);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const keySecret = newHookKeySecret();
      writeFileSync(join(dir, 'hook-key'), `${keySecret}\n`, { mode: 0o600 });
      known[`hook key of ${dir}`] = keySecret;
      dirs.push(dir);
      return { dir, key: hookKeyFromSecret(keySecret), keySecret };
    },
    adminToken: remember,
    secrets() {
      for (const dir of dirs) {
        if (!known[`admin token of ${dir}`] && existsSync(join(dir, 'admin-token'))) remember(dir);
      }
      return { ...known };
    },
    subscribers(name, data, secrets) {
      const file = join(root, `${name}.subscribers.yaml`);
      writeFileSync(file, JSON.stringify(data, null, 2));
      if (!secrets) return ['--subscribers', file];
      const secretsFile = join(root, `${name}.secrets.yaml`);
      writeFileSync(secretsFile, JSON.stringify(secrets), { mode: 0o600 });
      return ['--subscribers', file, '--secrets', secretsFile];
    },
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** One admin API call; resolves to the status and the parsed JSON body. */
export async function admin(baseUrl: string, token: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

export interface DeadLetterRow {
  id: number;
  subscriber: string;
  eventId: string;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
}

export async function deadLetters(baseUrl: string, token: string, subscriber?: string): Promise<DeadLetterRow[]> {
  const q = subscriber ? `?subscriber=${encodeURIComponent(subscriber)}&limit=100000` : '?limit=100000';
  const { status, body } = await admin(baseUrl, token, 'GET', `/v1/dead-letters${q}`);
  if (status !== 200) throw new Error(`GET /v1/dead-letters answered ${status}: ${JSON.stringify(body)}`);
  return body.deadLetters as DeadLetterRow[];
}

/** Pending deliveries per subscriber, from GET /v1/subscribers. */
export async function queueDepths(baseUrl: string, token: string): Promise<Record<string, number>> {
  const { body } = await admin(baseUrl, token, 'GET', '/v1/subscribers');
  return Object.fromEntries((body.subscribers as { name: string; queueDepth: number }[]).map((s) => [s.name, s.queueDepth]));
}

/** Polls until `probe` holds; fails after `timeoutMs` with `what` and the last value seen. */
export async function waitFor<T>(what: string, probe: () => T | Promise<T>, done: (v: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (done(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(v)?.slice(0, 500)})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * A test file's workspace and subscribers, torn down after its last test together with every
 * process it started, whether the tests passed or not.
 */
export function fileFixtures(prefix: string): { ws: Workspace; subscribers: ReturnType<typeof subscriberSet> } {
  const ws = workspace(prefix);
  const subscribers = subscriberSet();
  afterAll(async () => {
    await killAll();
    await subscribers.closeAll();
    ws.cleanup();
  });
  return { ws, subscribers };
}
