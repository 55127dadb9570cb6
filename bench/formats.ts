import { buildEvent, type EventFact } from '../callback/event-id.js';
import { formatDelivery } from '../callback/formats/index.js';
import { runUrl } from '../callback/run-url.js';
import { parseSubscribers } from '../callback/subscribers/parse.js';
import type { KfpEvent, Subscriber } from '../callback/types.js';
import { numericFlags } from './lib/args.js';
import { describeMachine, machine, markdownTable, writeResults } from './lib/report.js';
import { interleaved } from './lib/rounds.js';
import { compare, fmt } from './lib/stats.js';

/**
 * What a body costs in each subscriber format, in process: events formatted per second for the chat
 * and CI formats (slack, teams, github) and an admin's template (the PagerDuty one of
 * docs/subscribers.md), each against the documented JSON event (json) measured in the same rounds,
 * order alternating. The events are a failed step and a failed run with a 1 KB message, not frozen,
 * so the per-event body cache (formats/index.ts) never answers: this is the cost of making a body.
 * No target: a body is made once per event and subscriber, next to an HTTP request that costs
 * far more; the figures say how much more the formats cost than json.
 */

const flags = numericFlags('bench/formats', { rounds: 7, durationMs: 400 });

const fact = (eventType: 'WorkflowNodeFailed' | 'WorkflowFailed'): EventFact => ({
  eventType,
  kfpRunId: '3f6a2c1e-6b1d-4a43-9a55-0d5c0c1f2b7e',
  workflowName: 'train-x7k2p',
  namespace: 'kubeflow-user-example-com',
  argoNodeName: 'train-x7k2p.root.train-model',
  nodeDisplayName: 'Train model',
  phase: 'Failed',
  message: `Train model: ${'Traceback (most recent call last): "x" \\ <y> & z\n'.repeat(20).slice(0, 1000)}`,
  time: '2025-03-01T11:58:00.000Z',
  pipelineName: 'nightly-training',
  runName: 'nightly training 2025-03-01',
  workflowUid: '0b8f3c52-7a5e-4f1e-9d57-2f6d1e4c9a10',
  source: 'hook',
});
const events: KfpEvent[] = (['WorkflowNodeFailed', 'WorkflowFailed'] as const).map((t) => {
  const e = buildEvent(fact(t));
  return { ...e, RunUrl: runUrl('https://kubeflow.example.com/pipeline', e.KfpRunId) };
});

const PAGERDUTY = `{"routing_key": "0123456789abcdef0123456789abcdef", "event_action": "{% if EventType == "WorkflowSucceeded" %}resolve{% else %}trigger{% endif %}", "dedup_key": "kfp-run-{{ KfpRunId }}", "payload": {"summary": "{{ RunName | default: WorkflowName | truncate: 200 }} failed: {{ Message | truncate: 800 }}", "source": "{{ Namespace }}/{{ WorkflowName }}", "severity": "error", "timestamp": "{{ Time }}"}{% if RunUrl != "" %}, "links": [{"href": "{{ RunUrl }}", "text": "Run in the KFP UI"}]{% endif %}}`;
const parsed = parseSubscribers(
  {
    json: { url: 'http://x/', format: 'json' },
    slack: { url: 'http://x/', format: 'slack' },
    teams: { url: 'http://x/', format: 'teams' },
    github: { url: 'http://x/repos/o/r/dispatches', format: 'github', headers: { Authorization: 'Bearer t' } },
    template: { url: 'http://x/', format: 'template', template: PAGERDUTY },
  },
  () => undefined,
);
if (parsed.errors.length > 0) throw new Error(parsed.errors.join('; '));
const subs = new Map<string, Subscriber>(parsed.subscribers.map((s) => [s.name, s]));
const VARIANTS = ['json', 'slack', 'teams', 'github', 'template'] as const;

let sink = 0;
/** Bodies made per second during `durationMs` of one variant. */
async function rate(variant: (typeof VARIANTS)[number]): Promise<number> {
  const sub = subs.get(variant) as Subscriber;
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < flags.durationMs) {
    for (let i = 0; i < 64; i++) sink += formatDelivery(events[i & 1] as KfpEvent, sub).body.length;
    n += 64;
  }
  return n / ((performance.now() - start) / 1000);
}

for (const v of VARIANTS) await rate(v); // warm-up: JIT and the template engine
const results = await interleaved(VARIANTS, flags.rounds, (v) => rate(v));
const rows = VARIANTS.filter((v) => v !== 'json').map((v) => {
  const c = compare(results[v], results.json);
  return [v, fmt(c.product.median), fmt(1e6 / c.product.median), fmt(c.ratio), `${fmt(c.roundRatios.min)}–${fmt(c.roundRatios.max)}`];
});
const json = compare(results.json, results.json).product.median;
const m = machine();
console.log(`bench/formats: ${describeMachine(m)}; ${flags.rounds} rounds of ${flags.durationMs} ms per format; json: ${fmt(json)} bodies/s (${fmt(1e6 / json)} µs each)`);
console.log(markdownTable(['format', 'bodies/s (median)', 'µs per body', 'rate vs json', 'per-round ratio range'], rows));
console.log(`results: ${writeResults('formats', { machine: m, flags, results, sink })}`);
