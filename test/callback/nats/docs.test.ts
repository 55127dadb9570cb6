import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildEvent } from '../../../callback/event-id.js';
import { natsMessage } from '../../../callback/nats/message.js';
import { parseSubscribers } from '../../../callback/subscribers/parse.js';
import type { Subscriber } from '../../../callback/types.js';
import { parseDocuments } from '../../../common/yaml-docs.js';
import { EXAMPLE_FACTS } from '../core/sample.js';

/** docs/nats.md: its ConfigMap parses as shown, and its messages are byte for byte what is published. */

const doc = readFileSync(new URL('../../../docs/nats.md', import.meta.url), 'utf8');
const blocks = [...doc.matchAll(/<!-- example: ([^>]+) -->\n```\w*\n([\s\S]*?)\n```/g)].map((m) => ({ label: (m[1] as string).trim().split(/\s+/), body: m[2] as string }));

const SECRETS: Record<string, string> = {
  'kfp-notify-nats/kfp.creds': '-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QifQ.e30.c2ln\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\nSUAEXAMPLE\n------END USER NKEY SEED------\n',
  'kfp-notify-nats/ca.crt': '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
};

function configured(): Subscriber[] {
  const block = blocks.find((b) => b.label[0] === 'configmap');
  const cm = parseDocuments(block?.body ?? '', 'docs/nats.md')[0] as { data: Record<string, string> };
  const r = parseSubscribers(cm.data, (ref) => SECRETS[`${ref.name}/${ref.key}`]);
  expect(r.errors).toEqual([]);
  return r.subscribers;
}

describe('docs/nats.md', () => {
  it('the ConfigMap example parses, with the keys it shows', () => {
    const subs = configured();
    expect(subs.map((s) => [s.name, s.format, s.nats?.servers.length])).toEqual([
      ['kfp-operator', 'kfp-operator', 3],
      ['run-events', 'cloudevents-binary', 1],
    ]);
    expect(subs[0]?.nats?.auth).toEqual({ creds: SECRETS['kfp-notify-nats/kfp.creds'] });
  });

  const messages = blocks.filter((b) => b.label[0] === 'nats-message');
  it('has message examples for both formats it shows', () => {
    expect(messages.map((b) => b.label[1])).toEqual(['cloudevents-binary', 'kfp-operator']);
  });

  it.each(messages.map((b) => [b.label.slice(1).join(' '), b] as const))('the %s message is what the subscriber of the ConfigMap example publishes', (_label, block) => {
    const [format, eventType] = block.label.slice(1) as [string, string];
    const sub = configured().find((s) => s.format === format);
    const fact = EXAMPLE_FACTS.find((f) => f.eventType === eventType);
    if (!sub?.nats || !fact) throw new Error(`no subscriber or fact for ${block.label.join(' ')}`);
    const m = natsMessage(buildEvent(fact), { format: sub.format, subject: sub.nats.subject });
    if (!m.ok) throw new Error(m.error);
    const [head, body] = block.body.split('\n\n') as [string, string];
    const lines = head.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)] as const);
    expect(lines[0]).toEqual(['subject', m.message.subject]);
    expect(Object.fromEntries(lines.slice(1))).toEqual(m.message.headers);
    expect(body).toBe(m.message.body);
  });
});
