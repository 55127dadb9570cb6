import { readFileSync, writeFileSync } from 'node:fs';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { formatDelivery } from '../../callback/formats/index.js';
import { parseSubscribers } from '../../callback/subscribers/parse.js';
import type { KfpEvent, PayloadFormat, Subscriber } from '../../callback/types.js';
import { EXAMPLE_FACTS, exampleEvent } from '../callback/core/sample.js';

/**
 * `REFRESH_DOCS=1 npx vitest run test/tools/refresh-doc-examples.test.ts` rewrites the example bodies in
 * docs/events.md and docs/subscribers.md from the code after an intended change (the docs tests in
 * test/callback/core then hold them to it; review the diff). Without the variable it only checks that
 * a refresh would change nothing, like the docs tests do.
 */

const SECRETS: Record<string, string> = { 'kfp-notify-subscribers/github-token': 'Bearer github_pat_example', 'kfp-notify-subscribers/teams-token': 'Bearer abc' };
const BLOCK = /<!-- example: ([^>]+) -->\n```(\w*)\n([\s\S]*?)\n```/g;

function example(type: string): KfpEvent {
  const fact = EXAMPLE_FACTS.find((f) => f.eventType === type);
  if (!fact) throw new Error(`no example fact for ${type}`);
  return exampleEvent(fact);
}

function documentedSubscribers(text: string): Map<string, Subscriber> {
  const subs = new Map<string, Subscriber>();
  for (const m of text.matchAll(BLOCK)) {
    const label = (m[1] ?? '').trim().split(/\s+/);
    if (label[0] !== 'configmap') continue;
    const r = parseSubscribers((load(m[3] ?? '') as { data?: Record<string, unknown> }).data ?? {}, (ref) => SECRETS[`${ref.name}/${ref.key}`]);
    for (const s of r.subscribers) subs.set(s.name, s);
  }
  return subs;
}

function refreshed(text: string): string {
  const subs = documentedSubscribers(text);
  return text.replace(BLOCK, (whole, rawLabel: string, lang: string, body: string) => {
    const label = rawLabel.trim().split(/\s+/);
    const [kind, a, b] = label;
    let sent: { headers: Record<string, string>; body: string } | undefined;
    if (kind === 'body' && a && b) sent = formatDelivery(example(b), { format: a as PayloadFormat });
    else if (kind === 'output' && a && b && subs.get(a)) sent = formatDelivery(example(b), subs.get(a) as Subscriber);
    else if ((kind === 'json' || kind === 'cloudevents-structured') && a) sent = formatDelivery(example(a), { format: kind });
    else if (kind === 'cloudevents-binary' && a) {
      const d = formatDelivery(example(a), { format: kind });
      const head = Object.entries(d.headers).map(([k, v]) => `${k}: ${v}`).join('\n');
      return `<!-- example: ${rawLabel} -->\n\`\`\`${lang}\n${head}\n\n${d.body}\n\`\`\``;
    }
    if (!sent) return whole;
    // Bodies are shown indented when they were (JSON), as sent otherwise.
    const shown = body.trimStart().startsWith('{') && body.includes('\n') ? JSON.stringify(JSON.parse(sent.body), null, 2) : sent.body;
    return `<!-- example: ${rawLabel} -->\n\`\`\`${lang}\n${shown}\n\`\`\``;
  });
}

describe('doc examples are what the code sends', () => {
  it.each(['events.md', 'subscribers.md'])('docs/%s', (name) => {
    const url = new URL(`../../docs/${name}`, import.meta.url);
    const text = readFileSync(url, 'utf8');
    const next = refreshed(text);
    if (process.env.REFRESH_DOCS === '1') writeFileSync(url, next);
    else expect(next).toBe(text);
  });
});
