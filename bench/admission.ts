import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newHookKeySecret } from '../common/hook-token.js';
import { DEFAULT_BODY_LIMIT_BYTES } from '../webhook/server.js';
import { generateSelfSigned } from '../webhook/self-signed.js';
import { numericFlags } from './lib/args.js';
import { post } from './lib/http.js';
import { assertAllOk, startLoadGenerator, type LoadResult } from './lib/load.js';
import { benchDir, deadline, profiled, script, startNode, startRpcChild } from './lib/procs.js';
import { CHARTS_DIR, describeMachine, machine, markdownTable, writeChart, writeResults } from './lib/report.js';
import { interleaved } from './lib/rounds.js';
import { compare, fmt, verdict, type Comparison } from './lib/stats.js';
import { lineChart } from './lib/svg-chart.js';
import { TYPICAL_FIXTURE, admissionReviewBody, generatedWorkflow, typicalWorkflow } from './lib/workflows.js';

/**
 * Admission over HTTPS: `kfp-notify webhook` (the real CLI, its own process, logging at info to a
 * file) against a bare Fastify HTTPS route that parses the same AdmissionReview and answers a fixed
 * one (bench/servers/bare-https.ts). autocannon loads both from a third process.
 *
 * - typical: a real KFP v2 compile, `connections` at once (saturating): throughput ≥ 60%, p99 ≤ 2×;
 * - sizes 10, 100, 500, 2000 steps (generated, KFP v2-shaped), one request at a time so latency is
 *   the cost of one admission, not queueing, a fixed number of requests per run: p99 ≤ 3× at 500
 *   steps, and the growth chart.
 */

const flags = numericFlags('bench/admission', { rounds: 5, duration: 3, connections: 10, warmup: 1 });
deadline(420_000, 'bench/admission');

/** Steps → requests per run, one at a time: enough for a p99 that is more than the slowest one or two. */
const SIZES: ReadonlyArray<[number, number]> = [
  [10, 400],
  [100, 300],
  [500, 150],
  [2000, 30],
];
const TARGETS = { throughput: 0.6, p99: 2, p99At500: 3 };
// The apiserver caps request bodies at 3 MiB; the 2000-step review is past that (though within the
// webhook's own body limit), and injected it is past the injector's 1 MiB size limit, which is raised
// so that every size is injected and measured rather than skipped.
const BODY_LIMIT = DEFAULT_BODY_LIMIT_BYTES;
const SIZE_LIMIT = 16 * 2 ** 20;

const dir = benchDir();
const tls = await generateSelfSigned(['127.0.0.1', 'localhost']);
const certFile = join(dir, 'tls.crt');
const keyFile = join(dir, 'tls.key');
const hookKeyFile = join(dir, 'hook-key');
writeFileSync(certFile, tls.cert);
writeFileSync(keyFile, tls.key, { mode: 0o600 });
writeFileSync(hookKeyFile, `${newHookKeySecret()}\n`, { mode: 0o600 });

const webhookArgs = ['webhook', '--host', '127.0.0.1', '--port', '0', '--tls-cert', certFile, '--tls-key', keyFile, '--hook-key-file', hookKeyFile,
  '--data-dir', dir, '--callback-url', 'http://127.0.0.1:8080', '--size-limit', String(SIZE_LIMIT)];
const listening = (l: Record<string, unknown>) => (l.msg === 'webhook listening' && typeof l.url === 'string' ? l.url : undefined);
// The product as installed (its default: admissions on the event loop), and, as a diagnostic, the same
// CLI parsing and injecting on one worker thread (--inject-threads 1).
const webhook = startNode(script('servers/cli.js'), webhookArgs, { name: 'webhook', nodeArgs: profiled() });
const threadedWebhook = startNode(script('servers/cli.js'), [...webhookArgs, '--inject-threads', '1'], { name: 'webhook-threaded', nodeArgs: profiled() });
const productUrl = await webhook.waitForLog(listening);
const threadedUrl = await threadedWebhook.waitForLog(listening);
const { proc: bare, ready } = await startRpcChild<{ url: string }>('servers/bare-https.js', { certFile, keyFile, bodyLimit: BODY_LIMIT }, { name: 'bare-https' });
const load = await startLoadGenerator();

type Variant = 'product' | 'baseline' | 'answer' | 'precomputed' | 'threaded';
const urls: Partial<Record<Variant, string>> = { product: `${productUrl}/mutate`, baseline: `${ready.url}/mutate`, threaded: `${threadedUrl}/mutate` };

/** The webhook's answer to this body; it must really inject (a 200 that skipped or failed open would measure nothing). */
async function injectedAnswer(body: string): Promise<{ text: string; patchOps: number }> {
  const res = await post(urls.product!, body, { ca: tls.cert });
  const review = JSON.parse(res.text) as { response?: { allowed?: boolean; patch?: string } };
  if (res.status !== 200 || review.response?.allowed !== true || !review.response.patch) {
    throw new Error(`the webhook did not inject (HTTP ${res.status}): ${res.text.slice(0, 300)}`);
  }
  return { text: res.text, patchOps: (JSON.parse(Buffer.from(review.response.patch, 'base64').toString('utf8')) as unknown[]).length };
}

interface CaseResult {
  name: string;
  steps?: number;
  bodyBytes: number;
  answerBytes: number;
  patchOps: number;
  connections: number;
  /** Seconds per run, or requests per run (`amount`). */
  durationS: number;
  amount?: number;
  runs: Partial<Record<Variant, LoadResult[]>>;
  rps: Comparison;
  p50: Comparison;
  p99: Comparison;
  /** Diagnostics against the bare route: it sending the webhook's own answer (the cost of the answer's bytes). */
  answer?: { rps: Comparison; p99: Comparison };
  /** ...and the webhook server with the injection precomputed (everything but the injector). */
  precomputed?: { rps: Comparison; p99: Comparison };
  /** The webhook parsing and injecting on a worker thread (--inject-threads 1). */
  threaded?: { rps: Comparison; p50: Comparison; p99: Comparison };
}

async function measureCase(
  name: string,
  body: string,
  connections: number,
  durationS: number,
  o: { steps?: number; variants?: readonly Variant[]; amount?: number } = {},
): Promise<CaseResult> {
  const { text, patchOps } = await injectedAnswer(body);
  const variants = o.variants ?? (['product', 'baseline'] as const);
  const spec = (v: Variant, d: number, amount?: number) => ({
    url: urls[v]!,
    method: 'POST' as const,
    body,
    headers: { 'content-type': 'application/json' },
    connections,
    durationS: d,
    ...(amount !== undefined ? { amount } : {}),
  });
  for (const v of variants) assertAllOk(`${name} warm-up, ${v}`, await load.run(spec(v, flags.warmup, o.amount === undefined ? undefined : Math.ceil(o.amount / 10))));
  const runs = await interleaved(variants, flags.rounds, async (v) => assertAllOk(`${name}, ${v}`, await load.run(spec(v, durationS, o.amount))));
  const pick = (k: 'rps' | 'p50' | 'p99') => (r: LoadResult) => (k === 'rps' ? r.rps : r.latencyMs[k]);
  const cmp = (k: 'rps' | 'p50' | 'p99', v: Variant = 'product') => compare(runs[v]!.map(pick(k)), runs.baseline!.map(pick(k)));
  process.stderr.write(`${name}: ${fmt(cmp('rps').ratio)}× throughput, ${fmt(cmp('p99').ratio)}× p99\n`);
  return {
    name,
    ...(o.steps ? { steps: o.steps } : {}),
    bodyBytes: Buffer.byteLength(body),
    answerBytes: Buffer.byteLength(text),
    patchOps,
    connections,
    durationS,
    ...(o.amount !== undefined ? { amount: o.amount } : {}),
    runs,
    rps: cmp('rps'),
    p50: cmp('p50'),
    p99: cmp('p99'),
    ...(runs.answer ? { answer: { rps: cmp('rps', 'answer'), p99: cmp('p99', 'answer') } } : {}),
    ...(runs.precomputed ? { precomputed: { rps: cmp('rps', 'precomputed'), p99: cmp('p99', 'precomputed') } } : {}),
    ...(runs.threaded ? { threaded: { rps: cmp('rps', 'threaded'), p50: cmp('p50', 'threaded'), p99: cmp('p99', 'threaded') } } : {}),
  };
}

// Bodies and answers go to the diagnostic servers as files: the answer carries a hook token, which has
// no business in a process list.
const typicalBody = admissionReviewBody(typicalWorkflow());
const bodyFile = join(dir, 'typical-review.json');
const answerFile = join(dir, 'typical-answer.json');
writeFileSync(bodyFile, typicalBody);
writeFileSync(answerFile, (await injectedAnswer(typicalBody)).text, { mode: 0o600 });
const { proc: sameAnswer, ready: answerReady } = await startRpcChild<{ url: string }>(
  'servers/bare-https.js',
  { certFile, keyFile, bodyLimit: BODY_LIMIT, answerFile },
  { name: 'bare-https-answer' },
);
urls.answer = `${answerReady.url}/mutate`;
const { proc: precomputed, ready: precomputedReady } = await startRpcChild<{ url: string }>(
  'servers/webhook-app.js',
  { certFile, keyFile, hookKeyFile, logFile: join(dir, 'webhook-precomputed.log'), bodyLimit: BODY_LIMIT, sizeLimit: SIZE_LIMIT, bodyFile },
  { name: 'webhook-precomputed', nodeArgs: profiled() },
);
urls.precomputed = `${precomputedReady.url}/mutate`;
const typical = await measureCase(`typical: ${TYPICAL_FIXTURE}`, typicalBody, flags.connections, flags.duration, { variants: ['product', 'baseline', 'threaded', 'answer', 'precomputed'] });
const sized: CaseResult[] = [];
for (const [steps, amount] of SIZES) {
  sized.push(await measureCase(`${steps} steps`, admissionReviewBody(generatedWorkflow(steps)), 1, 0, { steps, amount, variants: ['product', 'baseline', 'threaded'] }));
}

// What the webhook said about each admission: every one must have been injected.
const outcomes: Record<string, number> = {};
for (const line of [webhook, threadedWebhook].flatMap((w) => readFileSync(w.logFile, 'utf8').split('\n'))) {
  const m = /"outcome":"(\w+)"/.exec(line);
  if (m?.[1]) outcomes[m[1]] = (outcomes[m[1]] ?? 0) + 1;
}
await Promise.all([load.stop(), bare.stop(), sameAnswer.stop(), precomputed.stop(), webhook.stop(), threadedWebhook.stop()]);

const at500 = sized.find((s) => s.steps === 500)!;
const m = machine();
const ms = (s: { median: number; spread: number }) => `${fmt(s.median)} (±${fmt(s.spread * 50, 2)}%)`;
const ratio = (c: Comparison) => `${fmt(c.ratio)}× (${fmt(c.roundRatios.min)}–${fmt(c.roundRatios.max)})`;
const targets = markdownTable(
  ['case', 'metric', 'baseline', 'kfp-notify webhook', 'ratio (round range)', 'target', 'verdict'],
  [
    ['typical, ' + flags.connections + ' connections', 'req/s', ms(typical.rps.baseline), ms(typical.rps.product), ratio(typical.rps), `≥ ${TARGETS.throughput}×`, verdict(typical.rps.ratio, TARGETS.throughput, 'atLeast')],
    ['typical, ' + flags.connections + ' connections', 'p99 ms', ms(typical.p99.baseline), ms(typical.p99.product), ratio(typical.p99), `≤ ${TARGETS.p99}×`, verdict(typical.p99.ratio, TARGETS.p99, 'atMost')],
    ...(typical.threaded
      ? [
          ['typical, diagnostic: the webhook with --inject-threads 1', 'req/s', ms(typical.rps.baseline), ms(typical.threaded.rps.product), ratio(typical.threaded.rps), '—', '—'],
          ['typical, diagnostic: the webhook with --inject-threads 1', 'p99 ms', ms(typical.p99.baseline), ms(typical.threaded.p99.product), ratio(typical.threaded.p99), '—', '—'],
        ]
      : []),
    ...(typical.answer
      ? [['typical, diagnostic: bare route sending the webhook\'s answer (' + typical.answerBytes.toLocaleString('en-US') + ' bytes)', 'req/s', ms(typical.rps.baseline), ms(typical.answer.rps.product), ratio(typical.answer.rps), '—', '—']]
      : []),
    ...(typical.precomputed
      ? [['typical, diagnostic: the webhook server with the injection precomputed', 'req/s', ms(typical.rps.baseline), ms(typical.precomputed.rps.product), ratio(typical.precomputed.rps), '—', '—']]
      : []),
    ['500 steps, 1 connection', 'p99 ms', ms(at500.p99.baseline), ms(at500.p99.product), ratio(at500.p99), `≤ ${TARGETS.p99At500}×`, verdict(at500.p99.ratio, TARGETS.p99At500, 'atMost')],
    ...(at500.threaded
      ? [['500 steps, diagnostic: --inject-threads 1', 'p99 ms', ms(at500.p99.baseline), ms(at500.threaded.p99.product), ratio(at500.threaded.p99), '—', '—']]
      : []),
  ],
);
const growth = markdownTable(
  ['steps', 'review bytes', 'patch ops', 'baseline p50 / p99 ms', 'webhook p50 / p99 ms', 'p50 ratio', 'p99 ratio (round range)', '--inject-threads 1: p50 / p99 ms', 'its p99 ratio'],
  sized.map((s) => [
    String(s.steps),
    s.bodyBytes.toLocaleString('en-US'),
    String(s.patchOps),
    `${fmt(s.p50.baseline.median)} / ${fmt(s.p99.baseline.median)}`,
    `${fmt(s.p50.product.median)} / ${fmt(s.p99.product.median)}`,
    `${fmt(s.p50.ratio)}×`,
    ratio(s.p99),
    s.threaded ? `${fmt(s.threaded.p50.product.median)} / ${fmt(s.threaded.p99.product.median)}` : '—',
    s.threaded ? ratio(s.threaded.p99) : '—',
  ]),
);

const series = (k: 'p50' | 'p99', v: 'product' | 'baseline') => sized.map((s) => ({ x: s.steps ?? 0, y: s[k][v].median }));
const chart = writeChart(
  'admission-latency-vs-steps.svg',
  lineChart({
    title: 'Admission latency against Workflow size (HTTPS, one request at a time)',
    xLabel: 'steps in the Workflow (KFP v2 shape, log scale)',
    yLabel: 'latency, ms (log scale)',
    logX: true,
    logY: true,
    series: [
      { name: 'webhook p99', points: series('p99', 'product') },
      { name: 'webhook p50', points: series('p50', 'product') },
      { name: 'bare Fastify p99', points: series('p99', 'baseline'), dashed: true },
      { name: 'bare Fastify p50', points: series('p50', 'baseline'), dashed: true },
    ],
  }),
);
const file = writeResults('admission', { machine: m, flags, targets: TARGETS, bodyLimit: BODY_LIMIT, sizeLimit: SIZE_LIMIT, webhookOutcomes: outcomes, typical, sized });
process.stdout.write(
  [
    `## Admission over HTTPS, ${flags.rounds} rounds`,
    '',
    `Machine: ${describeMachine(m)}`,
    '',
    targets,
    '',
    `### Latency against size (1 connection; ${SIZES.map(([s, n]) => `${n} requests per run at ${s} steps`).join(', ')})`,
    '',
    growth,
    '',
    `Webhook log outcomes: ${JSON.stringify(outcomes)}. ±: half the range of the rounds, as a % of the median.`,
    `Chart: ${chart.replace(`${CHARTS_DIR}/`, 'docs/charts/')}. Raw results: ${file}`,
    '',
  ].join('\n'),
);
