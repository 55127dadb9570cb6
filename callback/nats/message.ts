import { formatDelivery } from '../formats/index.js';
import { compileTemplate, type CompiledTemplate } from '../template.js';
import type { KfpEvent, PayloadFormat } from '../types.js';
import { isTemplate, subjectProblem, subjectScope } from './subject.js';

/**
 * One event → one NATS message for one subscriber: subject, headers, body. Pure (a template cache
 * aside). Bodies come from callback/formats, shared with HTTP subscribers; only the header mapping is
 * NATS's own:
 * - `cloudevents-binary`: NATS binary mode (CloudEvents NATS binding 1.0.3): every attribute as a
 *   lower-case `ce-` header, `datacontenttype` included as `ce-datacontenttype` (HTTP puts it in
 *   Content-Type, NATS does not), the `data` as the body;
 * - `cloudevents-structured`: the JSON event as the body, `content-type: application/cloudevents+json`
 *   (how a NATS receiver tells structured mode from binary);
 * - `json`: the documented event, `content-type: application/json`;
 * - `kfp-operator`: `{"data": {...}}` and no header but Nats-Msg-Id, as kfp-operator publishes.
 * Every message carries `Nats-Msg-Id: <EventId>`, so a stream drops a redelivery inside its duplicate window.
 */

export interface NatsMessage {
  subject: string;
  /** Header name → value; names as they go on the wire (NATS keeps their case). */
  headers: Record<string, string>;
  body: string;
}

export const MSG_ID_HEADER = 'Nats-Msg-Id';

const templates = new Map<string, CompiledTemplate>();
const MAX_CACHED = 1024;

/** A subject template, compiled once per source (the config parser has already compiled it with a sample). */
function template(source: string): { ok: true; template: CompiledTemplate } | { ok: false; error: string } {
  const hit = templates.get(source);
  if (hit) return { ok: true, template: hit };
  const c = compileTemplate(source, 'subject-token');
  if (!c.ok) return c;
  if (templates.size >= MAX_CACHED) templates.clear();
  templates.set(source, c.template);
  return c;
}

/** The subject for this event, or why there is none (a template whose `{% if %}` left an empty token...). */
export function renderSubject(source: string, event: KfpEvent): { ok: true; subject: string } | { ok: false; error: string } {
  if (!isTemplate(source)) return { ok: true, subject: source };
  const t = template(source);
  if (!t.ok) return t;
  const r = t.template.render(subjectScope(event));
  if (!r.ok) return r;
  const bad = subjectProblem(r.text);
  return bad ? { ok: false, error: `subject template rendered ${JSON.stringify(r.text)}: ${bad}` } : { ok: true, subject: r.text };
}

function natsHeaders(format: PayloadFormat, formatted: Readonly<Record<string, string>>): Record<string, string> {
  if (format === 'kfp-operator') return {};
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(formatted)) {
    if (format === 'cloudevents-binary' && name === 'content-type') out['ce-datacontenttype'] = value;
    else out[name] = value;
  }
  return out;
}

export function natsMessage(event: KfpEvent, sub: { format: PayloadFormat; subject: string }): { ok: true; message: NatsMessage } | { ok: false; error: string } {
  const subject = renderSubject(sub.subject, event);
  if (!subject.ok) return subject;
  const { headers, body } = formatDelivery(event, { format: sub.format });
  return { ok: true, message: { subject: subject.subject, headers: { ...natsHeaders(sub.format, headers), [MSG_ID_HEADER]: event.EventId }, body } };
}
