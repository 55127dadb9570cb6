import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pool } from 'undici';
import { HOOK_PATH } from '../../../common/hook-contract.js';
import { hookKeyFromSecret, mintHookToken, type HookKey } from '../../../common/hook-token.js';
import { parseDocuments } from '../../../common/yaml-docs.js';
import { hookRequest } from '../../../cli/demo/hook-request.js';
import { asCreatedByKfp } from '../../../cli/demo/kfp-api-server.js';
import { simulateRun } from '../../../cli/demo/simulate-run.js';
import { defaultInjectOptions, injectWorkflow } from '../../../webhook/inject/index.js';
import type { Workflow } from '../../../common/kfp/workflow-types.js';
import { FIXTURES_DIR } from '../../helpers/fixtures.js';

/**
 * Hook calls in volume, each exactly what an injected Workflow's notifier sends: a real KFP fixture
 * is injected (the real injector), played as Argo would run it (cli/demo/simulate-run.ts) and turned
 * into requests (cli/demo/hook-request.ts). Injecting costs ~15 ms, so one fixture is injected once
 * with placeholder identities, and each run's calls are the template's with that run's identity and
 * a token minted for it, which is what injecting that run would have baked in.
 */

export interface HookCall {
  runId: string;
  namespace: string;
  /** application/x-www-form-urlencoded, as the notifier's curl sends it. */
  body: string;
  /** `Bearer <hook token>`. */
  authorization: string;
}

export interface RunIdentity {
  runId: string;
  namespace: string;
  workflowName: string;
}

/** URL-safe placeholders (letters, digits and dashes encode as themselves). */
const P = { runId: 'pl4ceholder-run-id', namespace: 'pl4ceholder-ns', workflowName: 'pl4ceholder-wf', uid: 'pl4ceholder-uid' };
const templates = new Map<string, string[]>();

function callTemplates(fixture: string, failTasks: readonly string[]): string[] {
  const cacheKey = `${fixture}|${failTasks.join(',')}`;
  const known = templates.get(cacheKey);
  if (known) return known;
  const [compiled] = parseDocuments(readFileSync(join(FIXTURES_DIR, fixture), 'utf8'), fixture);
  const created = asCreatedByKfp(compiled as Workflow, { runId: P.runId, runName: 'reliability run', namespace: P.namespace });
  const key = hookKeyFromSecret('placeholder-key-never-used-for-real-calls');
  // Every step hooked (`stepHooks: all`): the load these helpers make is hook traffic, one call per
  // finished step, as the heaviest policy sends it (the default sends successes through the watcher).
  const injected = injectWorkflow(created, defaultInjectOptions({ hookKey: key, callbackUrl: 'http://127.0.0.1:1', stepHooks: 'all' }));
  if (injected.outcome !== 'injected') throw new Error(`${fixture} was not injected: ${injected.reason ?? injected.outcome}`);
  const wf = injected.workflow as Workflow;
  const run = simulateRun(wf, { workflowName: P.workflowName, workflowUid: P.uid, namespace: P.namespace, failTasks });
  const bodies = run.firings.map((f) => hookRequest(wf, f).body);
  templates.set(cacheKey, bodies);
  return bodies;
}

/** The calls one run of `fixture` makes (those with a step in `failTasks` fail), authenticated for that run. */
export function runHookCalls(fixture: string, run: RunIdentity, key: HookKey, failTasks: readonly string[] = []): HookCall[] {
  const authorization = `Bearer ${mintHookToken(key, { namespace: run.namespace, kfpRunId: run.runId })}`;
  return callTemplates(fixture, failTasks).map((t) => ({
    runId: run.runId,
    namespace: run.namespace,
    authorization,
    body: t.replaceAll(P.runId, run.runId).replaceAll(P.namespace, run.namespace).replaceAll(P.workflowName, run.workflowName).replaceAll(P.uid, `uid-${run.runId}`),
  }));
}

const FIXTURE_MIX: { fixture: string; failTasks: string[] }[] = [
  { fixture: 'kfp-v1-compiler/basic.yaml', failTasks: ['save'] },
  { fixture: 'kfp-v1-compiler/withitem_basic.yaml', failTasks: [] },
  { fixture: 'kfp-v2-argocompiler-2.5.0/multiple_parallel_loops.yaml', failTasks: [] },
  { fixture: 'kfp-v2-compiled-workflows-master/pipeline_with_exit_handler.yaml', failTasks: ['fail-op'] },
  { fixture: 'kfp-v2-compiled-workflows-master/pipeline_with_loops.yaml', failTasks: [] },
];

/** At least `count` hook calls from runs of a mix of KFP v1 and v2 fixtures, some failing; run ids start with `prefix`. */
export function hookCallMix(count: number, key: HookKey, prefix: string, namespaces: readonly string[] = ['team-a', 'team-b']): HookCall[] {
  const calls: HookCall[] = [];
  for (let i = 0; calls.length < count; i++) {
    const mix = FIXTURE_MIX[i % FIXTURE_MIX.length];
    if (!mix) throw new Error('empty fixture mix');
    const runId = `${prefix}-${i.toString().padStart(5, '0')}`;
    calls.push(...runHookCalls(mix.fixture, { runId, namespace: namespaces[i % namespaces.length] ?? 'team-a', workflowName: `wf-${runId}` }, key, mix.failTasks));
  }
  return calls;
}

export type HookAnswer = { status: number; body: unknown; headers: Record<string, string | string[] | undefined> } | { error: string };

export interface RawCall {
  body: string | Buffer;
  /** Omitted when undefined. */
  authorization?: string;
}

/**
 * A keep-alive connection pool to one callback, as many hook pods calling one Service would be.
 * `contentType` null sends none; a call without `authorization` sends no such header.
 */
export function hookClient(baseUrl: string, connections = 16): { post(call: RawCall, contentType?: string | null): Promise<HookAnswer>; close(): Promise<void> } {
  const pool = new Pool(baseUrl, { connections, pipelining: 1 });
  return {
    async post(call, contentType = 'application/x-www-form-urlencoded') {
      try {
        const res = await pool.request({
          path: HOOK_PATH,
          method: 'POST',
          headers: {
            ...(contentType !== null ? { 'content-type': contentType } : {}),
            ...(call.authorization !== undefined ? { authorization: call.authorization } : {}),
          },
          body: call.body,
          headersTimeout: 30_000,
          bodyTimeout: 30_000,
        });
        const text = await res.body.text();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // kept as text
        }
        return { status: res.statusCode, body, headers: res.headers };
      } catch (err) {
        return { error: err instanceof Error ? `${(err as { code?: string }).code ?? ''} ${err.message}` : String(err) };
      }
    },
    close: () => pool.destroy(),
  };
}

/** Runs `fn` over `items` with at most `concurrency` at once; results in input order. */
export async function inParallel<T, R>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

/** The event ids a 202 answer names. */
export function acceptedIds(answer: HookAnswer): string[] {
  if ('error' in answer || answer.status !== 202) return [];
  const ids = (answer.body as { eventIds?: unknown }).eventIds;
  return Array.isArray(ids) ? ids.filter((i): i is string => typeof i === 'string') : [];
}

/** A small seeded PRNG (mulberry32), so a failing chaos or fuzz run can be replayed from its seed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed from $KFP_NOTIFY_SEED, else a fresh one; tests print it so a failure can be replayed. */
export function seedFromEnv(): number {
  const s = process.env.KFP_NOTIFY_SEED;
  return s !== undefined && s !== '' ? Number(s) : (Date.now() ^ (Math.random() * 0x100000000)) >>> 0;
}
