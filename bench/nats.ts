import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers as natsHeaders } from '@nats-io/transport-node';
import { buildEvent } from '../callback/event-id.js';
import { natsMessage } from '../callback/nats/message.js';
import { createNatsTransport } from '../callback/nats/transport.js';
import { parseSubscriber } from '../callback/subscribers/parse.js';
import type { KfpEvent, Subscriber } from '../callback/types.js';
import { createLogger } from '../common/logger.js';
import { startNatsServer } from '../test/helpers/nats-server.js';
import { numericFlags } from './lib/args.js';
import { deadline } from './lib/procs.js';
import { describeMachine, machine, markdownTable, writeResults } from './lib/report.js';
import { interleaved } from './lib/rounds.js';
import { compare, fmt, verdict, type Comparison } from './lib/stats.js';

/**
 * The nats transport's publishes per second against a bare nats.js client sending the same messages
 * (same subject, headers and body) to the same nats-server, 4 in flight at a time (a lane's default
 * maxConcurrency): to a subject a stream captures (product: transport.deliver, waiting for the
 * PubAck; baseline: jetstream().publish with the same msgID), and to a subject no stream captures
 * (product: deliver, core publish + flush; baseline: publish + flush). Each message has a new
 * Nats-Msg-Id, so the stream stores every one. nats-server runs as its own process (file storage).
 * Target: ≥ 50% of the bare client's rate in both cases.
 */

const flags = numericFlags('bench/nats', { rounds: 5, messages: 4000 });
deadline(300_000, 'bench/nats');
const TARGET = 0.5;
const IN_FLIGHT = 4;

const server = await startNatsServer();
const nc = await connect({ servers: server.url });
await (await jetstreamManager(nc)).streams.add({ name: 'BENCH', subjects: ['bench.js.>'] });
const js = jetstream(nc);
const transport = createNatsTransport({ log: createLogger({ level: 'warn' }) });
const signal = new AbortController().signal;

function subscriber(subject: string): Subscriber {
  const r = parseSubscriber('bench', { type: 'nats', url: server.url, subject }, () => undefined);
  if (!r.ok) throw new Error(r.problems.join('; '));
  return r.subscriber;
}
const subs = { stream: subscriber('bench.js.{{ EventType }}'), core: subscriber('bench.core.{{ EventType }}') };

let seq = 0;
function events(n: number): KfpEvent[] {
  return Array.from({ length: n }, () => {
    const i = seq++;
    return buildEvent({ kfpRunId: `run-${i}`, workflowName: `wf-${i}`, namespace: 'team-a', pipelineName: 'train', runName: `run ${i}`, workflowUid: `uid-${i}`, source: 'hook', argoNodeName: '', nodeDisplayName: '', eventType: 'WorkflowSucceeded', phase: 'Succeeded', time: '2026-01-01T00:00:00.000Z' });
  });
}

async function inFlight(items: readonly KfpEvent[], send: (e: KfpEvent) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < items.length) await send(items[next++] as KfpEvent);
  }));
}

type Variant = 'product' | 'baseline';

async function run(kind: 'stream' | 'core', v: Variant, n: number): Promise<number> {
  const sub = subs[kind];
  const items = events(n);
  const started = performance.now();
  if (v === 'product') {
    await inFlight(items, async (e) => {
      const r = await transport.deliver(sub, e, signal);
      if (!r.ok) throw new Error(`delivery failed: ${r.error}`);
    });
  } else {
    await inFlight(items, async (e) => {
      const m = natsMessage(e, { format: sub.format, subject: sub.nats?.subject ?? '' });
      if (!m.ok) throw new Error(m.error);
      const h = natsHeaders();
      for (const [k, val] of Object.entries(m.message.headers)) h.set(k, val);
      if (kind === 'stream') await js.publish(m.message.subject, m.message.body, { headers: h, msgID: e.EventId });
      else {
        nc.publish(m.message.subject, m.message.body, { headers: h });
        await nc.flush();
      }
    });
  }
  return n / ((performance.now() - started) / 1000);
}

const rows: { kind: string; cmp: Comparison }[] = [];
for (const kind of ['stream', 'core'] as const) {
  for (const v of ['product', 'baseline'] as const) await run(kind, v, flags.messages / 4); // warm-up
  const runs = await interleaved(['product', 'baseline'] as const, flags.rounds, (v) => run(kind, v, flags.messages));
  const cmp = compare(runs.product, runs.baseline);
  rows.push({ kind, cmp });
  process.stderr.write(`${kind}: ${fmt(cmp.product.median)} vs ${fmt(cmp.baseline.median)} msgs/s (${fmt(cmp.ratio)}×)\n`);
}

const m = machine();
console.log(`NATS publishes, ${IN_FLIGHT} in flight, ${flags.messages} messages per run, ${flags.rounds} rounds; ${describeMachine(m)}\n`);
console.log(
  markdownTable(
    ['subject', 'kfp-notify (msgs/s, median)', 'bare nats.js (msgs/s, median)', 'ratio', 'round range', `target ≥ ${TARGET * 100}%`],
    rows.map(({ kind, cmp }) => [
      kind === 'stream' ? 'captured by a stream (JetStream ack)' : 'no stream (core publish + flush)',
      fmt(cmp.product.median),
      fmt(cmp.baseline.median),
      `${fmt(cmp.ratio * 100)}%`,
      `${fmt(cmp.roundRatios.min * 100)}–${fmt(cmp.roundRatios.max * 100)}%`,
      verdict(cmp.ratio, TARGET, 'atLeast'),
    ]),
  ),
);
writeResults('nats', { machine: m, flags, rows });
await transport.close();
await nc.close();
await server.dispose();
