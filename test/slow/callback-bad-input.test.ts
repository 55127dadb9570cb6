import { connect } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hookKeyFromSecret, mintHookToken, type HookKey } from '../../common/hook-token.js';
import { killAll, startCallbackProcess, type CallbackProcess } from './helpers/callback-process.js';
import { acceptedIds, hookCallMix, hookClient, inParallel, runHookCalls, seeded, seedFromEnv, type HookAnswer, type RawCall } from './helpers/hook-load.js';
import { malformedCalls } from './helpers/malformed.js';
import { leaksInThisFile } from './helpers/secrets.js';
import { waitFor, workspace } from './helpers/setup.js';
import { deliveredCounts, startScriptedSubscriber, type ScriptedSubscriber } from './helpers/subscriber-server.js';

/**
 * Bad input and forged calls at volume against a real `kfp-notify callback` process: every one is
 * answered 4xx with a reason (never a 5xx, a crash or a hang), none becomes an event, and the
 * service still accepts and delivers afterwards. Random choices come from a printed seed
 * (KFP_NOTIFY_SEED replays the same calls).
 */

const SEED = seedFromEnv();
const ws = workspace('kfp-notify-bad-input-');
let cb: CallbackProcess;
let rx: ScriptedSubscriber;
let key: HookKey;

beforeAll(async () => {
  rx = await startScriptedSubscriber(() => ({ status: 200 }));
  const d = ws.dataDir('bad-input');
  key = d.key;
  cb = await startCallbackProcess(['--data-dir', d.dir, ...ws.subscribers('bad-input', { rx: rx.url })]);
  ws.adminToken(d.dir);
});
afterAll(async () => {
  await killAll();
  await rx?.close();
  ws.cleanup();
});

const BODY_LIMIT = 1024 * 1024;

/** `kfp_notify_hook_calls_total` by status code, from the Prometheus text. */
function hookCallCodes(metrics: string): Record<string, number> {
  return Object.fromEntries([...metrics.matchAll(/^kfp_notify_hook_calls_total\{code="(\d+)"\} (\d+)$/gm)].map((m) => [m[1] ?? '', Number(m[2])]));
}

function reasonOf(a: HookAnswer): string {
  if ('error' in a) return '';
  const e = (a.body as { error?: unknown } | null)?.error;
  return typeof e === 'string' ? e : '';
}

/** Valid hook calls still work end to end: each is accepted and reaches the subscriber. */
async function stillDelivers(prefix: string, n = 40): Promise<void> {
  const client = hookClient(cb.url, 4);
  const answers = await inParallel(hookCallMix(n, key, prefix), 4, (c) => client.post(c));
  await client.close();
  expect(answers.filter((a) => 'error' in a || a.status !== 202)).toEqual([]);
  const ids = answers.flatMap(acceptedIds);
  await waitFor(`the ${prefix} events at the subscriber`, () => ids.filter((id) => !deliveredCounts(rx).has(id)).length, (n) => n === 0);
}

describe(`bad input against a real kfp-notify callback process (seed ${SEED})`, () => {
  it('10,000 malformed hook calls each get a 4xx with a reason: no 5xx, no crash, no hang, no event; the service still delivers afterwards', async () => {
    const run = runHookCalls('kfp-v1-compiler/basic.yaml', { runId: 'run-valid', namespace: 'team-a', workflowName: 'wf-valid' }, key);
    const valid = Object.fromEntries(new URLSearchParams(run.find((c) => c.body.includes('event=node-exit'))?.body ?? ''));
    expect(valid.event).toBe('node-exit');
    const calls = malformedCalls(10_000, valid, key, seeded(SEED));
    const client = hookClient(cb.url, 32);
    const started = performance.now();
    const answers = await inParallel(calls, 32, (c) => client.post(c, c.contentType));
    const elapsedMs = performance.now() - started;
    await client.close();

    const byKind = new Map<string, Map<string, number>>();
    const wrong: string[] = [];
    let oversizedCut = 0;
    answers.forEach((a, i) => {
      const call = calls[i];
      const kind = call?.kind ?? '?';
      // A 413 comes before the body is read, and the server closes the connection: a client still
      // writing the rest may see the connection cut instead of the answer. The server's own count
      // of its answers (below) shows it did answer 413.
      const oversized = (call?.body.length ?? 0) > BODY_LIMIT;
      if ('error' in a && oversized) oversizedCut++;
      const code = 'error' in a ? (oversized ? 'cut while sending' : a.error) : String(a.status);
      const counts = byKind.get(kind) ?? new Map<string, number>();
      counts.set(code, (counts.get(code) ?? 0) + 1);
      byKind.set(kind, counts);
      if ('error' in a ? !oversized : a.status < 400 || a.status >= 500 || reasonOf(a) === '') wrong.push(`${kind}: ${code} ${JSON.stringify('error' in a ? a.error : a.body).slice(0, 200)}`);
    });
    const wrongKinds = [...new Set(wrong.map((w) => w.split(':')[0]))].join('; ');
    expect(wrong.slice(0, 20), `${wrong.length} calls not answered 4xx with a reason (kinds: ${wrongKinds})`).toEqual([]);
    // The server's count of its answers: one 4xx per call, a 413 for each oversized one, nothing else.
    const answered = hookCallCodes(await (await request(`${cb.url}/metrics`)).body.text());
    expect(Object.keys(answered).filter((code) => !code.startsWith('4'))).toEqual([]);
    expect(Object.values(answered).reduce((n, c) => n + c, 0)).toBe(calls.length);
    expect(answered['413']).toBe(calls.filter((c) => c.body.length > BODY_LIMIT).length);
    // Not one became an event, and the process is still there and answering.
    expect(rx.attempts).toEqual([]);
    expect((await request(`${cb.url}/healthz`)).statusCode).toBe(200);
    expect(cb.child.exitCode).toBeNull();
    await stillDelivers('after-malformed');

    const table = [...byKind].sort(([a], [b]) => a.localeCompare(b)).map(([k, c]) => `${k}: ${[...c].map(([s, n]) => `${s}×${n}`).join(' ')}`);
    console.log(
      `[figures] malformed: ${calls.length} calls in ${Math.round(elapsedMs)} ms, all 4xx with a reason (server counts: ${JSON.stringify(answered)}; ` +
        `${oversizedCut} oversized calls saw the connection cut before reading their 413), 0 events\n  ${table.join('\n  ')}`,
    );
  });

  it('forged calls at volume (no token, a malformed one, a wrong key or MAC, another run\'s or another namespace\'s token) are refused 401/403; the valid calls among them are delivered, the forged never', async () => {
    const rand = seeded(SEED + 1);
    const legit = hookCallMix(300, key, 'legit');
    const otherKey = hookKeyFromSecret('a-key-the-callback-does-not-have-0123456789');
    const forgeries: [number, string, (c: (typeof legit)[number]) => RawCall & { where?: string }][] = [
      [401, 'no token', (c) => ({ body: c.body })],
      [401, 'not a bearer token', (c) => ({ body: c.body, authorization: `Basic ${Buffer.from('hook:secret').toString('base64')}` })],
      [401, 'empty bearer', (c) => ({ body: c.body, authorization: 'Bearer ' })],
      [401, 'malformed token', (c) => ({ body: c.body, authorization: `Bearer ${pickOne(rand, ['kn1.', 'kn1.abc', 'kn2.a.b', 'kn1.a.b.c', 'x'.repeat(300), c.authorization.slice(7).replace('kn1', 'kn0')])}` })],
      [401, 'token in the query string instead', (c) => ({ body: c.body, where: `?token=${encodeURIComponent(c.authorization.slice(7))}` })],
      [403, 'another key', (c) => ({ body: c.body, authorization: `Bearer ${mintHookToken(otherKey, { namespace: c.namespace, kfpRunId: c.runId })}` })],
      [403, 'right key id, wrong MAC', (c) => ({ body: c.body, authorization: `${c.authorization.slice(0, -4)}${c.authorization.endsWith('AAAA') ? 'BBBB' : 'AAAA'}` })],
      [403, 'MAC cut short', (c) => ({ body: c.body, authorization: c.authorization.slice(0, -1 - Math.floor(rand() * 10)) })],
      [403, "another run's token", (c) => ({ body: c.body, authorization: `Bearer ${mintHookToken(key, { namespace: c.namespace, kfpRunId: `${c.runId}-other` })}` })],
      [403, "another namespace's token", (c) => ({ body: c.body, authorization: `Bearer ${mintHookToken(key, { namespace: c.namespace === 'team-a' ? 'team-b' : 'team-a', kfpRunId: c.runId })}` })],
      [403, 'a valid token, the call rewritten to claim another run', (c) => ({ body: c.body.replaceAll(c.runId, `${c.runId}x`), authorization: c.authorization })],
    ];
    type Planned = { expect: number | 202; kind: string; call: RawCall & { where?: string } };
    const planned: Planned[] = legit.map((c) => ({ expect: 202, kind: 'valid', call: c }));
    for (let i = 0; i < 3_000; i++) {
      const [status, kind, forge] = pickOne(rand, forgeries);
      planned.push({ expect: status, kind, call: forge(pickOne(rand, legit)) });
    }
    planned.sort(() => rand() - 0.5);

    const before = new Set(deliveredCounts(rx).keys());
    const client = hookClient(cb.url, 32);
    const answers = await inParallel(planned, 32, async (p): Promise<HookAnswer> => {
      if (!p.call.where) return client.post(p.call);
      const res = await request(`${cb.url}/v1/hooks${p.call.where}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: p.call.body });
      return { status: res.statusCode, body: await res.body.json(), headers: res.headers };
    });
    const off = planned.flatMap((p, i) => {
      const a = answers[i] ?? { error: 'none' };
      const got = 'error' in a ? a.error : a.status;
      return got === p.expect && (p.expect === 202 || reasonOf(a) !== '') ? [] : [`${p.kind}: expected ${p.expect}, got ${got} ${reasonOf(a)}`];
    });
    expect(off.slice(0, 20), `${off.length} calls answered otherwise`).toEqual([]);
    await client.close();
    const legitIds = new Set(answers.flatMap(acceptedIds));
    await waitFor('the valid calls at the subscriber', () => [...legitIds].filter((id) => !deliveredCounts(rx).has(id)).length, (n) => n === 0);
    // What reached the subscriber meanwhile is exactly what the valid calls carried.
    expect(new Set([...deliveredCounts(rx).keys()].filter((id) => !before.has(id)))).toEqual(legitIds);
    const byKind = new Map<string, number>();
    for (const p of planned) byKind.set(p.kind, (byKind.get(p.kind) ?? 0) + 1);
    console.log(`[figures] forgery: ${planned.length - legit.length} forged calls refused (${[...byKind].filter(([k]) => k !== 'valid').map(([k, n]) => `${k} ${n}`).join(', ')}), ${legit.length} valid calls → ${legitIds.size} events delivered`);
  });

  it('size limits hold: 1 MiB is the most a hook call may send, whatever its framing; oversized headers are refused', async () => {
    const limit = BODY_LIMIT;
    const post = async (body: Buffer | string, headers: Record<string, string> = {}) => {
      const res = await request(`${cb.url}/v1/hooks`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
      return { status: res.statusCode, text: await res.body.text() };
    };
    const served413 = async () => hookCallCodes(await (await request(`${cb.url}/metrics`)).body.text())['413'] ?? 0;
    const before413 = await served413();
    // Exactly at the limit: read and judged (not JSON here), not refused for its size.
    expect(await post(Buffer.alloc(limit, 0x20))).toMatchObject({ status: 400 });
    const port = Number(new URL(cb.url).port);
    const head = (extra: string) => `POST /v1/hooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${extra}\r\n`;
    // One byte over; chunked (no content-length) past the limit; a declared 50 MB body (refused from
    // its headers alone, without waiting for a byte of it). The first two are refused while the client
    // is still sending, which may then see the connection cut instead of the answer; the server's own
    // count of its answers shows the 413s.
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const seen = [
      await exchange(port, [head(`Content-Length: ${limit + 1}\r\n`), Buffer.alloc(limit + 1, 0x20)]),
      await exchange(port, [head('Transfer-Encoding: chunked\r\n'), ...Array.from({ length: 40 }, () => Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')])), '0\r\n\r\n']),
      await exchange(port, [`${head(`Content-Length: ${50 * limit}\r\n`)}{`]),
    ];
    expect(seen.filter((r) => r !== '' && !/^HTTP\/1\.1 413 /.test(r))).toEqual([]);
    expect(seen[2]).toContain(JSON.stringify({ error: `body larger than ${limit} bytes` }));
    expect(await served413()).toBe(before413 + 3);
    // Headers past Node's 16 KiB limit.
    expect((await post('{}', { 'x-padding': 'h'.repeat(64 * 1024) })).status).toBe(431);
    await stillDelivers('after-limits', 10);
  });

  it('stalled clients (half-sent headers, half-sent bodies) neither hold up other hook calls nor the shutdown on SIGTERM', async () => {
    const port = Number(new URL(cb.url).port);
    const sockets = Array.from({ length: 100 }, (_v, i) => {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      s.write(i % 2 === 0 ? 'POST /v1/hooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"v":"1",' : 'POST /v1/hooks HTTP/1.1\r\nHost: x\r\nContent-Ty');
      return s;
    });
    try {
      await stillDelivers('beside-stalled', 40);
      const signalled = performance.now();
      const exit = await Promise.race([cb.stop('SIGTERM'), new Promise<'hung'>((r) => setTimeout(() => r('hung'), 20_000))]);
      const shutdownMs = performance.now() - signalled;
      expect(exit).toEqual({ code: 0, signal: null });
      console.log(`[figures] stalled clients: 100 open, 40 valid calls delivered beside them, SIGTERM → exit 0 in ${Math.round(shutdownMs)} ms`);
    } finally {
      for (const s of sockets) s.destroy();
    }
    expect(cb.lines.some((l) => l.msg === 'callback stopped')).toBe(true);
  });

  it('no secret reached the output of the processes this file ran (forged tokens included)', () => {
    expect(leaksInThisFile(ws.secrets())).toEqual([]);
  });
});

/** Writes `parts` on a raw connection (stopping if the server closes it) and resolves to what came back. */
function exchange(port: number, parts: (string | Buffer)[]): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const s = connect(port, '127.0.0.1', () => {
      for (const p of parts) if (!s.destroyed) s.write(p);
    });
    const timer = setTimeout(() => s.destroy(), 10_000);
    s.on('data', (d: Buffer) => {
      got += d.toString();
      // One whole JSON answer is all these exchanges expect.
      if (/\r\n\r\n\{.*\}$/s.test(got)) s.destroy();
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
  });
}

function pickOne<T>(rand: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rand() * xs.length)] as T;
}
