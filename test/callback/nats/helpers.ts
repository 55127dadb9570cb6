import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { parseSubscriber } from '../../../callback/subscribers/parse.js';
import type { SecretRef, Subscriber } from '../../../callback/types.js';

/** A nats subscriber made by the real config parser from ConfigMap-style keys (short retries for tests). */
export function natsSubscriber(name: string, keys: Record<string, unknown>, secrets: Record<string, Record<string, string>> = {}): Subscriber {
  const r = parseSubscriber(name, { type: 'nats', timeout: '2s', retry: { schedule: [0.05, 0.05], jitter: 0 }, ...keys }, (ref: SecretRef) => secrets[ref.name]?.[ref.key]);
  if (!r.ok) throw new Error(`subscriber ${name}: ${r.problems.join('; ')}`);
  return r.subscriber;
}

export interface StoredMessage {
  seq: number;
  subject: string;
  headers: Record<string, string[]>;
  body: string;
}

/** Every message a stream holds, read back from the server (with their headers, as stored). */
export async function streamMessages(jsm: JetStreamManager, stream: string): Promise<StoredMessage[]> {
  const info = await jsm.streams.info(stream);
  const out: StoredMessage[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq });
    if (!m) continue;
    const headers: Record<string, string[]> = {};
    for (const k of m.header?.keys() ?? []) headers[k] = m.header?.values(k) ?? [];
    out.push({ seq, subject: m.subject, headers, body: m.string() });
  }
  return out;
}

export async function addStream(nc: NatsConnection, name: string, subjects: string[], extra: Record<string, unknown> = {}): Promise<JetStreamManager> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name, subjects, ...extra });
  return jsm;
}

/** Polls until `check` holds (a deadline, not a timing assertion: it only bounds a wait). */
export async function until(check: () => boolean | Promise<boolean>, what: string, deadlineMs = 20_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
