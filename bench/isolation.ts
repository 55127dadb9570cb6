import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { hookKeyFromSecret, newHookKeySecret } from '../common/hook-token.js';
import { numericFlags } from './lib/args.js';
import { formBody, hookHeaders, hookUrl, nodeExitFields } from './lib/hook-calls.js';
import { benchDir, deadline, profiled, script, startNode, startRpcChild, type Proc } from './lib/procs.js';
import { describeMachine, machine, markdownTable, writeResults } from './lib/report.js';
import { pause } from './lib/rounds.js';
import { compare, fmt, quantile, verdict } from './lib/stats.js';
import type { Arrivals, ReceiversReady } from './servers/receivers.js';

/**
 * Isolation: two `kfp-notify callback` processes (the real CLI, fresh data dirs each round), each
 * with 10 subscribers of its own, take the same hook calls at the same moments. In `stall`,
 * subscriber 0 answers each request only after 10 s; in `clear`, it answers at once. Running both
 * side by side means whatever else the machine does in a round hits both alike.
 *
 * The figure is the p99 delivery latency of the other nine subscribers: the hook call's 202 (the event
 * is durable and queued) → the request at the subscriber, both clocks on this machine. End to end
 * (from the hook call sent) is shown too; it adds the durable accept, which the stall cannot touch.
 * Target: p99 with the stall ≤ 1.2 × p99 without it. Both sides of a round ran at the same time, so
 * the figure is the median of the rounds' own ratios (a busy round is busy for both).
 */

const flags = numericFlags('bench/isolation', { rounds: 5, rate: 50, duration: 6, warmup: 1, stall: 10 });
deadline(280_000, 'bench/isolation');
const SUBSCRIBERS = 10;
const TARGET = 1.2;
const VARIANTS = ['clear', 'stall'] as const;
type Variant = (typeof VARIANTS)[number];
/** Receivers [0, 10) belong to `clear`, [10, 20) to `stall`; the first of each set is subscriber 0. */
const first: Record<Variant, number> = { clear: 0, stall: SUBSCRIBERS };

const dir = benchDir();
const secret = newHookKeySecret();
const headers = hookHeaders(hookKeyFromSecret(secret));
const { proc: receivers, ready: rx } = await startRpcChild<ReceiversReady>('servers/receivers.js', { count: 2 * SUBSCRIBERS, record: true }, { name: 'receivers' });
const clock = () => performance.timeOrigin + performance.now();

interface RunResult {
  /** Delivery latency: the hook call's 202 received → the request at the subscriber, ms. */
  p50: number;
  p99: number;
  /** End to end: the hook call sent → the request at the subscriber (adds the durable accept), ms. */
  e2eP99: number;
  /** The hook call sent → its 202 received, ms. */
  acceptP99: number;
  samples: number;
  /** Requests subscriber 0 received (when stalled: its 4 slots, refilled every stall period). */
  subscriber0: number;
}

let runNo = 0;

async function startCallback(v: Variant): Promise<{ cli: Proc; url: string }> {
  const dataDir = join(dir, `run-${runNo}-${v}`);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dataDir, 'hook-key'), `${secret}\n`, { mode: 0o600 });
  const urls = rx.urls.slice(first[v], first[v] + SUBSCRIBERS);
  writeFileSync(join(dataDir, 'subscribers.yaml'), urls.map((u, i) => `sub-${i}: ${u}\n`).join(''));
  const cli = startNode(
    script('servers/cli.js'),
    ['callback', '--no-cluster', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir, '--subscribers', join(dataDir, 'subscribers.yaml')],
    { name: `callback-${v}`, nodeArgs: profiled(), env: { KUBERNETES_SERVICE_HOST: '' } },
  );
  const base = await cli.waitForLog((l) => (l.msg === 'callback listening' && typeof l.url === 'string' ? l.url : undefined));
  return { cli, url: hookUrl(base) };
}

async function round(): Promise<Record<Variant, RunResult>> {
  runNo++;
  await receivers.call('reset', { [first.stall]: flags.stall * 1000 });
  const started = { clear: await startCallback('clear'), stall: await startCallback('stall') };
  try {
    const agent = new Agent({ connections: 16 });
    const sentAt = { clear: new Map<string, number>(), stall: new Map<string, number>() };
    const acceptedAt = { clear: new Map<string, number>(), stall: new Map<string, number>() };
    const calls: Promise<void>[] = [];
    const total = Math.round(flags.rate * (flags.warmup + flags.duration));
    const warmupCalls = Math.round(flags.rate * flags.warmup);
    const start = clock();
    for (let i = 0; i < total; i++) {
      const wait = start + (i * 1000) / flags.rate - clock();
      if (wait > 1) await pause(wait);
      const body = formBody(nodeExitFields(`step-${runNo}-${i}`));
      for (const v of VARIANTS) {
        const t = clock();
        calls.push(
          request(started[v].url, { method: 'POST', headers, body, dispatcher: agent }).then(async (res) => {
            const answer = (await res.body.json()) as { eventIds?: string[] };
            const id = answer.eventIds?.[0];
            if (res.statusCode !== 202 || !id) throw new Error(`${v}: hook call answered ${res.statusCode}: ${JSON.stringify(answer)}`);
            if (i >= warmupCalls) {
              sentAt[v].set(id, t);
              acceptedAt[v].set(id, clock());
            }
          }),
        );
      }
    }
    await Promise.all(calls);
    await agent.close();
    // Every fast subscriber must get every event before the round counts.
    const fast = (got: number[]) => VARIANTS.flatMap((v) => got.slice(first[v] + 1, first[v] + SUBSCRIBERS));
    const until = Date.now() + 20_000;
    let got = await receivers.call<number[]>('received');
    while (fast(got).some((n) => n < total)) {
      if (Date.now() > until) throw new Error(`fast subscribers received ${fast(got).join(', ')} of ${total}`);
      await pause(100);
      got = await receivers.call<number[]>('received');
    }
    const arrivals = await receivers.call<Arrivals>('arrivals');
    const result = (v: Variant): RunResult => {
      const others = arrivals.slice(first[v] + 1, first[v] + SUBSCRIBERS);
      const since = (from: Map<string, number>) => others.flatMap((list) => list.flatMap(([id, at]) => (from.has(id) ? [at - from.get(id)!] : [])));
      const delivery = since(acceptedAt[v]);
      return {
        p50: quantile(delivery, 0.5),
        p99: quantile(delivery, 0.99),
        e2eP99: quantile(since(sentAt[v]), 0.99),
        acceptP99: quantile([...sentAt[v]].map(([id, t]) => acceptedAt[v].get(id)! - t), 0.99),
        samples: delivery.length,
        subscriber0: got[first[v]] ?? 0,
      };
    };
    return { clear: result('clear'), stall: result('stall') };
  } finally {
    await receivers.call('reset');
    await Promise.all(VARIANTS.map((v) => started[v].cli.stop(1500)));
  }
}

const runs: Record<Variant, RunResult[]> = { clear: [], stall: [] };
for (let r = 0; r < flags.rounds; r++) {
  const res = await round();
  for (const v of VARIANTS) runs[v].push(res[v]);
  process.stderr.write(
    `round ${r + 1}: p99 ${fmt(res.clear.p99)} ms clear, ${fmt(res.stall.p99)} ms stalled (${fmt(res.stall.p99 / res.clear.p99)}×); subscriber 0 got ${res.clear.subscriber0} / ${res.stall.subscriber0}\n`,
  );
}
await receivers.stop();

const cmp = (k: 'p50' | 'p99' | 'e2eP99' | 'acceptP99') => compare(runs.stall.map((r) => r[k]), runs.clear.map((r) => r[k]));
const p99 = cmp('p99');
const m = machine();
const ms = (s: { median: number; spread: number }) => `${fmt(s.median)} (±${fmt(s.spread * 50, 2)}%)`;
const row = (label: string, c: ReturnType<typeof cmp>, judged: boolean) => [
  label,
  ms(c.baseline),
  ms(c.product),
  `${fmt(c.roundRatios.median)}× (${fmt(c.roundRatios.min)}–${fmt(c.roundRatios.max)})`,
  judged ? `≤ ${TARGET}×` : '—',
  judged ? verdict(c.roundRatios.median, TARGET, 'atMost') : '—',
];
const table = markdownTable(
  ['the 9 other subscribers', 'no stall', `subscriber 0 stalled ${flags.stall} s`, 'median of the rounds\' ratios (range)', 'target', 'verdict'],
  [
    row('p99 delivery latency (202 → subscriber), ms', p99, true),
    row('p50 delivery latency (202 → subscriber), ms', cmp('p50'), false),
    row('p99 end to end (hook call sent → subscriber), ms', cmp('e2eP99'), false),
    row('p99 durable accept (hook call sent → 202), ms', cmp('acceptP99'), false),
  ],
);
const file = writeResults('isolation', { machine: m, flags, target: TARGET, runs, p99 });
process.stdout.write(
  [
    `## Isolation: one subscriber stalled, ${flags.rounds} rounds, ${flags.rate} hook calls/s to each callback for ${flags.duration} s (+${flags.warmup} s warm-up)`,
    '',
    `Machine: ${describeMachine(m)}`,
    '',
    table,
    '',
    `Subscriber 0 received per round: ${runs.clear.map((r) => r.subscriber0).join(', ')} (clear); ${runs.stall.map((r) => r.subscriber0).join(', ')} (stalled: 4 at once, each held ${flags.stall} s).`,
    `${runs.clear[0]?.samples ?? 0} deliveries per callback and round. ±: half the range of the rounds, as a % of the median. Raw results: ${file}`,
    '',
  ].join('\n'),
);
