import { readFileSync } from 'node:fs';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { buildEvent } from '../../../callback/event-id.js';
import { formatDelivery } from '../../../callback/formats/index.js';
import { parseSubscribers } from '../../../callback/subscribers/parse.js';
import { EVENT_TYPES, type KfpEvent, type PayloadFormat, type Subscriber } from '../../../callback/types.js';
import { EXAMPLE_FACTS, exampleEvent } from './sample.js';

/**
 * docs/subscribers.md's format sections, checked against the code: each `body <format> <EventType>`
 * block is exactly what that format sends for the example run, each `output <subscriber> <EventType>`
 * block is exactly what that documented template renders, and the PagerDuty, Discord and Google Chat
 * templates produce, for every event type and for hostile text, what each service documents.
 */

const text = readFileSync(new URL('../../../docs/subscribers.md', import.meta.url), 'utf8');
const blocks = [...text.matchAll(/<!-- example: ([^>]+) -->\n```\w*\n([\s\S]*?)\n```/g)].map((m) => ({ label: (m[1] as string).trim().split(/\s+/), body: m[2] as string }));
const SECRETS: Record<string, string> = { 'kfp-notify-subscribers/github-token': 'Bearer github_pat_example' };

/** Every subscriber the page's format sections define (`configmap <format> ...` examples), by name. */
const documented = new Map<string, Subscriber>(
  blocks
    .filter((b) => b.label[0] === 'configmap' && ['slack', 'teams', 'github', 'template'].includes(b.label[1] ?? ''))
    .flatMap((b) => {
      const r = parseSubscribers((load(b.body) as { data: Record<string, unknown> }).data, (ref) => SECRETS[`${ref.name}/${ref.key}`]);
      if (r.errors.length > 0) throw new Error(`docs/subscribers.md ConfigMap example ${b.label.join(' ')}: ${r.errors.join('; ')}`);
      return r.subscribers.map((s) => [s.name, s] as const);
    }),
);

const example = (type: string): KfpEvent => {
  const fact = EXAMPLE_FACTS.find((f) => f.eventType === type);
  if (!fact) throw new Error(`no example fact for ${type}`);
  return exampleEvent(fact);
};

function sub(name: string): Subscriber {
  const s = documented.get(name);
  if (!s) throw new Error(`docs/subscribers.md defines no subscriber ${name}`);
  return s;
}

describe('docs/subscribers.md shows exactly what each format sends', () => {
  it('has a node failure and a run success body for every format, and a ConfigMap entry each', () => {
    for (const format of ['slack', 'teams', 'github']) {
      expect(blocks.filter((b) => b.label[0] === 'body' && b.label[1] === format).map((b) => b.label[2]).sort()).toEqual(['WorkflowNodeFailed', 'WorkflowSucceeded']);
      expect([...documented.values()].some((s) => s.format === format)).toBe(true);
    }
    expect(['pagerduty', 'discord', 'google-chat'].map((n) => sub(n).format)).toEqual(['template', 'template', 'template']);
  });

  it.each(blocks.filter((b) => b.label[0] === 'body').map((b) => [b.label.slice(1).join(' '), b] as const))('body %s', (_l, block) => {
    const [, format, type] = block.label as [string, PayloadFormat, string];
    expect(JSON.stringify(JSON.parse(block.body))).toBe(formatDelivery(example(type), { format }).body);
  });

  it.each(blocks.filter((b) => b.label[0] === 'output').map((b) => [b.label.slice(1).join(' '), b] as const))('template output %s', (_l, block) => {
    const [, name, type] = block.label as [string, string, string];
    const sent = formatDelivery(example(type), sub(name));
    expect(sent.headers).toEqual({ 'content-type': 'application/json' });
    expect(JSON.parse(block.body)).toEqual(JSON.parse(sent.body));
  });
});

/** Text that breaks naive templates: quotes, backslashes, newlines, control characters, markup, mentions, long. */
const HOSTILE = `He said "stop" \\ C:\\tmp\n\t<script>&amp; @everyone {{ KfpRunId }} ${'€'.repeat(5000)}`;

function hostile(type: KfpEvent['EventType'], linked: boolean): KfpEvent {
  const base = EXAMPLE_FACTS.find((f) => f.eventType === type) ?? EXAMPLE_FACTS[0];
  const e = linked ? exampleEvent(base!) : buildEvent(base!);
  return { ...e, EventType: type, Message: HOSTILE.slice(0, 4096), RunName: `run "${HOSTILE.slice(0, 300)}`, PipelineName: type === 'WorkflowRunning' ? '' : 'p\\"q' };
}

const cases = EVENT_TYPES.flatMap((t) => [[t, true] as const, [t, false] as const]);
const render = (name: string, e: KfpEvent): Record<string, unknown> => JSON.parse(formatDelivery(e, sub(name)).body) as Record<string, unknown>;
const isUrl = (v: unknown): boolean => typeof v === 'string' && /^https?:\/\/\S+$/.test(v);

describe('PagerDuty Events API v2: what the documented template renders is a valid enqueue request', () => {
  // https://developer.pagerduty.com/docs/events-api-v2/trigger-events/ and /resolve-events/
  it.each(cases)('%s (RunUrl set: %s)', (type, linked) => {
    const b = render('pagerduty', hostile(type, linked)) as { routing_key: string; event_action: string; dedup_key: string; payload: Record<string, unknown>; links?: { href: string; text: string }[] };
    expect(Object.keys(b).every((k) => ['routing_key', 'event_action', 'dedup_key', 'payload', 'links', 'images', 'client', 'client_url'].includes(k))).toBe(true);
    expect(b.routing_key).toMatch(/^[0-9a-z]{32}$/);
    expect(b.event_action).toBe(type === 'WorkflowSucceeded' ? 'resolve' : 'trigger');
    expect(b.dedup_key.length).toBeLessThanOrEqual(255);
    expect(b.dedup_key).toBe(`kfp-run-${hostile(type, linked).KfpRunId}`);
    const p = b.payload as { summary: string; source: string; severity: string; timestamp: string; component: string; custom_details: Record<string, string> };
    expect(p.summary.length).toBeGreaterThan(0);
    expect(p.summary.length).toBeLessThanOrEqual(1024);
    expect(p.source.length).toBeGreaterThan(0);
    expect(['critical', 'error', 'warning', 'info']).toContain(p.severity);
    expect(Number.isNaN(Date.parse(p.timestamp))).toBe(false);
    if (type !== 'WorkflowSucceeded') expect(p.summary).toContain('He said "stop" \\ C:\\tmp\n\t<script>&amp; @everyone {{ KfpRunId }}');
    if (linked) expect(b.links).toEqual([{ href: hostile(type, linked).RunUrl, text: 'Run in the KFP UI' }]);
    else expect(b.links).toBeUndefined();
    for (const l of b.links ?? []) expect(isUrl(l.href)).toBe(true);
  });
});

describe('Discord execute-webhook: what the documented template renders is a valid message', () => {
  // https://discord.com/developers/docs/resources/webhook#execute-webhook and resources/message#embed-object-embed-limits
  it.each(cases)('%s (RunUrl set: %s)', (type, linked) => {
    const b = render('discord', hostile(type, linked)) as { content?: string; username: string; allowed_mentions: { parse: string[] }; embeds: Record<string, unknown>[] };
    expect(b.content === undefined || b.content.length <= 2000).toBe(true);
    expect(b.allowed_mentions).toEqual({ parse: [] });
    expect(b.embeds.length).toBeGreaterThanOrEqual(1);
    expect(b.embeds.length).toBeLessThanOrEqual(10);
    const e = b.embeds[0] as { title: string; description: string; color: number; url?: string; fields: { name: string; value: string }[]; timestamp: string };
    expect(e.title.length).toBeLessThanOrEqual(256);
    expect(e.description.length).toBeGreaterThan(0);
    expect(e.description.length).toBeLessThanOrEqual(4096);
    expect(Number.isInteger(e.color) && e.color >= 0 && e.color <= 0xffffff).toBe(true);
    expect(e.color).toBe(type.endsWith('Failed') ? 15158332 : 3066993);
    if (linked) expect(isUrl(e.url)).toBe(true);
    else expect(e).not.toHaveProperty('url');
    expect(e.fields.length).toBeLessThanOrEqual(25);
    for (const f of e.fields) {
      expect(f.name.length).toBeLessThanOrEqual(256);
      expect(f.value.length).toBeGreaterThan(0);
      expect(f.value.length).toBeLessThanOrEqual(1024);
    }
    const total = e.title.length + e.description.length + e.fields.reduce((n, f) => n + f.name.length + f.value.length, 0);
    expect(total).toBeLessThanOrEqual(6000);
    expect(Number.isNaN(Date.parse(e.timestamp))).toBe(false);
  });
});

describe('Google Chat incoming webhook: what the documented template renders is a valid text message', () => {
  // https://developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages (text ≤ 4096 characters)
  it.each(cases)('%s (RunUrl set: %s)', (type, linked) => {
    const e = hostile(type, linked);
    const b = render('google-chat', e) as { text: string };
    expect(Object.keys(b)).toEqual(['text']);
    expect(b.text.length).toBeGreaterThan(0);
    expect(b.text.length).toBeLessThanOrEqual(4096);
    expect(b.text.startsWith(`*run "He said`)).toBe(true);
    if (linked) expect(b.text.endsWith(`\n<${e.RunUrl}|Open the run in KFP>`)).toBe(true);
    else expect(b.text).not.toContain('<http');
  });
});

describe('Slack Workflow Builder: what the documented template renders is flat string variables', () => {
  // slackapi/slack-github-action: "the payload variables are flattened with stringified values"
  it.each(cases)('%s (RunUrl set: %s)', (type, linked) => {
    const b = render('slack-workflow', hostile(type, linked));
    expect(Object.keys(b).sort()).toEqual(['event', 'link', 'message', 'run']);
    for (const v of Object.values(b)) expect(typeof v).toBe('string');
    expect(b.message).toBe(HOSTILE.slice(0, 4096));
  });
});
