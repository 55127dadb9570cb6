import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { hookKeyFromSecret } from '../../common/hook-token.js';
import { admitText, realInjector, type Admission, type AdmissionAnswer } from '../../webhook/admit.js';
import { startAdmitPool, type AdmitPool, type AdmitPoolOptions } from '../../webhook/admit-pool.js';
import { defaultInjectOptions, type InjectOptions } from '../../webhook/inject/options.js';
import { admittedWorkflow, reviewFor } from '../helpers/tls.js';

// The pool runs the compiled worker (test/global-setup.ts builds dist/ before any test): real threads.
const REAL_WORKER = new URL('../../dist/webhook/admit-worker.js', import.meta.url);
const options = defaultInjectOptions({ hookKey: hookKeyFromSecret('pool-test-key-0123456789abcdef') });
const scratch = mkdtempSync(join(tmpdir(), 'kfp-notify-pool-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A stand-in worker script, for the failures the real one never has. */
function fakeWorker(name: string, onMessage: string): URL {
  const file = join(scratch, `${name}.mjs`);
  writeFileSync(file, `import { parentPort } from 'node:worker_threads';\nparentPort.on('message', (msg) => { ${onMessage} });\nparentPort.postMessage({ type: 'ready' });\n`);
  return pathToFileURL(file);
}

const pools: AdmitPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

interface Harness {
  pool: AdmitPool;
  inlineCalls: string[];
  restarts: string[];
  logs: Record<string, unknown>[];
}

async function start(over: Partial<AdmitPoolOptions> = {}): Promise<Harness> {
  const inlineCalls: string[] = [];
  const restarts: string[] = [];
  const logs: Record<string, unknown>[] = [];
  const pool = startAdmitPool({
    threads: 1,
    budgetMs: 2000,
    getInjectOptions: () => options,
    inline: (text, bytes) => {
      inlineCalls.push(text);
      return admitText(text, bytes, { inject: realInjector, getInjectOptions: () => options, budgetMs: 2000 });
    },
    logger: pino({ level: 'debug' }, { write: (l: string) => void logs.push(JSON.parse(l) as Record<string, unknown>) }),
    onRestart: (reason) => restarts.push(reason),
    workerUrl: REAL_WORKER,
    ...over,
  });
  pools.push(pool);
  await pool.started();
  return { pool, inlineCalls, restarts, logs };
}

function answered(a: Admission): AdmissionAnswer {
  if (!a.ok) throw new Error(`expected an answer, got a 400: ${a.reason}`);
  return a;
}

const body = (uid: string, fixture = 'kfp-v2-argocompiler-2.5.0/hello_world.yaml', runId = 'run-1'): string =>
  JSON.stringify(reviewFor(admittedWorkflow(fixture, runId), { uid, namespace: 'team-a' }));

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!check()) throw new Error(`timed out waiting for ${what}`);
}

describe('admissions on inject worker threads (real worker threads, real fixtures)', () => {
  it('answers exactly what admitting on the event loop answers', async () => {
    const h = await start();
    expect(h.pool.running()).toBe(1);
    for (const fixture of ['kfp-v2-argocompiler-2.5.0/hello_world.yaml', 'kfp-v1-compiler/basic.yaml', 'kfp-v2-compiled-workflows-master/pipeline_with_exit_handler.yaml']) {
      const text = body('uid-same', fixture);
      const onThread = answered(await h.pool.admit(text, Buffer.byteLength(text)));
      const inline = answered(await admitText(text, Buffer.byteLength(text), { inject: realInjector, getInjectOptions: () => options, budgetMs: 2000 }));
      expect(onThread.json).toBe(inline.json);
      expect(onThread.outcome).toBe('injected');
      expect(onThread.line).toEqual(inline.line);
      expect(onThread.patchBytes).toBe(inline.patchBytes);
    }
    expect(h.inlineCalls).toEqual([]);
  });

  it('answers a body that is not an AdmissionReview with the reason for a 400', async () => {
    const h = await start();
    expect(await h.pool.admit('{"kind":', 8)).toEqual({ ok: false, reason: expect.stringContaining('body is not valid JSON') });
    expect(await h.pool.admit('{"kind":"Pod"}', 14)).toEqual({ ok: false, reason: 'kind must be "AdmissionReview", got "Pod"' });
    expect(await h.pool.admit('{"__proto__":{"x":1}}', 20)).toEqual({ ok: false, reason: expect.stringContaining('forbidden prototype property') });
  });

  it('sends a worker new options when the settings change, and only then', async () => {
    let current: InjectOptions = { ...options, callbackUrl: 'http://one.example:8080' };
    let reads = 0;
    const h = await start({
      getInjectOptions: () => {
        reads++;
        return current;
      },
    });
    const first = answered(await h.pool.admit(body('a'), undefined));
    expect(Buffer.from(JSON.parse(first.json).response.patch, 'base64').toString()).toContain('http://one.example:8080/v1/hooks');
    current = { ...options, callbackUrl: 'http://two.example:8080' };
    const second = answered(await h.pool.admit(body('b'), undefined));
    const patch = Buffer.from(JSON.parse(second.json).response.patch, 'base64').toString();
    expect(patch).toContain('http://two.example:8080/v1/hooks');
    expect(patch).not.toContain('one.example');
    expect(reads).toBe(2);
  });

  it('fails open, without asking a worker, when the settings cannot be read', async () => {
    const h = await start({
      getInjectOptions: () => {
        throw new Error('hook key file vanished');
      },
    });
    const a = answered(await h.pool.admit(body('uid-nokey'), undefined));
    expect(a.outcome).toBe('failed_open');
    expect(a.cause).toBe('error');
    expect(a.line).toMatchObject({ uid: 'uid-nokey', err: 'hook key file vanished' });
    expect(JSON.parse(a.json).response).toEqual({ uid: 'uid-nokey', allowed: true, warnings: ['kfp-notify: hooks not injected: internal error (see webhook logs)'] });
  });

  it('fails open past the time budget when a worker never answers, and replaces the stuck worker', async () => {
    const h = await start({ budgetMs: 100, workerUrl: fakeWorker('silent', '/* never answers */') });
    const started = performance.now();
    const a = answered(await h.pool.admit(body('uid-stuck'), undefined));
    expect(performance.now() - started).toBeGreaterThanOrEqual(100);
    expect(a.outcome).toBe('failed_open');
    expect(a.cause).toBe('timeout');
    expect(JSON.parse(a.json).response).toEqual({ uid: 'uid-stuck', allowed: true, warnings: ['kfp-notify: hooks not injected: injection took longer than 100 ms'] });
    expect(h.restarts).toEqual(['stuck']);
    expect(h.logs.some((l) => l.msg === 'inject worker answered nothing within the time budget; replacing it')).toBe(true);
  });

  it('drops a late answer: the admission that timed out stays failed open', async () => {
    // Answers the options message at once (ignored: no such admission) and each admission after 300 ms.
    const late = fakeWorker('late', "if (msg.type === 'admit') setTimeout(() => parentPort.postMessage({ type: 'admission', id: msg.id, admission: { ok: false, reason: 'late' } }), 300);");
    const h = await start({ budgetMs: 100, workerUrl: late });
    const a = await h.pool.admit(body('uid-late'), undefined);
    expect(answered(a).cause).toBe('timeout');
    await new Promise((r) => setTimeout(r, 350));
    expect(answered(a).outcome).toBe('failed_open');
  });

  it('fails open what a dying worker held, admits inline while it restarts, then uses the new worker', async () => {
    const dies = fakeWorker('dies', "if (msg.type === 'admit') process.exit(3);");
    const h = await start({ workerUrl: dies });
    const a = answered(await h.pool.admit(body('uid-died'), undefined));
    expect(a).toMatchObject({ outcome: 'failed_open', cause: 'error', line: { uid: 'uid-died', err: 'inject worker exited (code 3)' } });
    expect(h.restarts).toEqual(['exit']);
    // No worker running: the next admission runs on the event loop, and is injected.
    expect(h.pool.running()).toBe(0);
    const b = answered(await h.pool.admit(body('uid-inline'), undefined));
    expect(b.outcome).toBe('injected');
    expect(h.inlineCalls).toHaveLength(1);
    await until(() => h.pool.running() === 1, 'the restarted worker');
  });

  it('never hands work to a worker that fails to load: admits inline, and backs off its restarts', async () => {
    const file = join(scratch, 'broken.mjs');
    writeFileSync(file, "import './no-such-module.mjs';\n");
    const h = await start({ workerUrl: pathToFileURL(file) });
    expect(h.pool.running()).toBe(0);
    const answers = await Promise.all(['uid-1', 'uid-2', 'uid-3'].map((uid, i) => h.pool.admit(body(uid, undefined, `run-${i}`), undefined)));
    expect(answers.map((a) => answered(a).outcome)).toEqual(['injected', 'injected', 'injected']);
    expect(h.inlineCalls).toHaveLength(3);
    await until(() => h.restarts.length >= 2, 'a second restart');
    const delays = h.logs.filter((l) => l.msg === 'inject worker exited; restarting it').map((l) => l.restartInMs);
    expect(delays.slice(0, 2)).toEqual([1000, 2000]);
  });

  it('spreads admissions over its threads and answers each with its own uid', async () => {
    const h = await start({ threads: 2 });
    expect(h.pool.running()).toBe(2);
    const uids = Array.from({ length: 20 }, (_, i) => `uid-${i}`);
    const answers = await Promise.all(uids.map((uid, i) => h.pool.admit(body(uid, undefined, `run-${i}`), undefined)));
    expect(answers.map((a) => JSON.parse(answered(a).json).response.uid)).toEqual(uids);
    expect(answers.every((a) => answered(a).outcome === 'injected')).toBe(true);
  });

  it('fails open what it holds when closed', async () => {
    const h = await start({ workerUrl: fakeWorker('silent2', '/* never answers */') });
    const pending = h.pool.admit(body('uid-closing'), undefined);
    await h.pool.close();
    expect(answered(await pending)).toMatchObject({ outcome: 'failed_open', cause: 'error', line: { err: 'the webhook is stopping' } });
  });

  it('refuses a thread count below one', () => {
    expect(() => startAdmitPool({ threads: 0, budgetMs: 1, getInjectOptions: () => options, inline: () => Promise.reject(new Error('unused')), logger: pino({ level: 'silent' }) })).toThrow(
      'inject threads must be a whole number ≥ 1, got 0',
    );
  });
});
