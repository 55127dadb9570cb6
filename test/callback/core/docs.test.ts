import { readFileSync } from 'node:fs';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { buildEvent } from '../../../callback/event-id.js';
import { formatDelivery } from '../../../callback/formats/index.js';
import { parseSubscribers } from '../../../callback/subscribers/parse.js';
import type { PayloadFormat } from '../../../callback/types.js';
import { EXAMPLE_FACTS, exampleEvent } from './sample.js';

const docs = (name: string): string => readFileSync(new URL(`../../../docs/${name}`, import.meta.url), 'utf8');

/** Fenced blocks preceded by `<!-- example: <a> <b> -->`. */
function examples(text: string): { label: string[]; body: string }[] {
  return [...text.matchAll(/<!-- example: ([^>]+) -->\n```\w*\n([\s\S]*?)\n```/g)].map((m) => ({ label: (m[1] as string).trim().split(/\s+/), body: m[2] as string }));
}

describe('docs/events.md shows exactly what is sent', () => {
  const blocks = examples(docs('events.md'));

  it('has an example for every EventType in json, and CloudEvents examples', () => {
    expect(blocks.filter((b) => b.label[0] === 'json').map((b) => b.label[1]).sort()).toEqual(EXAMPLE_FACTS.map((f) => f.eventType).sort());
    expect(blocks.some((b) => b.label[0] === 'cloudevents-binary')).toBe(true);
  });

  it.each(examples(docs('events.md')).map((b) => [b.label.join(' '), b] as const))('%s', (_label, block) => {
    const [format, eventType] = block.label as [PayloadFormat, string];
    const fact = EXAMPLE_FACTS.find((f) => f.eventType === eventType);
    if (!fact) throw new Error(`no example fact for ${eventType}`);
    const sent = formatDelivery(exampleEvent(fact), { format });
    if (format === 'cloudevents-binary') {
      const [head, body] = block.body.split('\n\n') as [string, string];
      const headers = Object.fromEntries(head.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
      expect(headers).toEqual(sent.headers);
      expect(body).toBe(sent.body);
    } else {
      // Shown indented; sent compact, with the same keys in the same order.
      expect(JSON.stringify(JSON.parse(block.body))).toBe(sent.body);
    }
  });
});

describe('docs/subscribers.md examples parse as documented', () => {
  const blocks = examples(docs('subscribers.md'));
  const secrets: Record<string, string> = {
    'kfp-notify-subscribers/ops-signing': `whsec_${Buffer.alloc(32, 7).toString('base64')}`,
    'kfp-notify-subscribers/ci-signing': `whsec_${Buffer.alloc(32, 8).toString('base64')} whsec_${Buffer.alloc(32, 9).toString('base64')}`,
    'kfp-notify-subscribers/teams-token': 'Bearer abc',
    'kfp-notify-subscribers/github-token': 'Bearer github_pat_example',
  };

  it.each(blocks.filter((b) => b.label[0] === 'configmap').map((b) => [b.label.slice(1).join(' '), b] as const))('%s', (_label, block) => {
    const doc = load(block.body) as { data?: Record<string, unknown> };
    const data = doc.data ?? {};
    const r = parseSubscribers(data, (ref) => secrets[`${ref.name}/${ref.key}`]);
    expect(r.errors).toEqual([]);
    expect(r.subscribers.map((s) => s.name)).toEqual(Object.keys(data).sort());
  });
});
