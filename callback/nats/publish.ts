import { errors, headers as natsHeaders, RequestError, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { errorMessage } from '../../common/error-message.js';
import type { NatsMessage } from './message.js';

/**
 * One publish, and when it counts as delivered. Never throws.
 *
 * Every message is first published as a JetStream publish (a request: the stream that captures the
 * subject answers with a PubAck once it has stored the message). Then:
 * - a PubAck → delivered; `duplicate: true` (the stream already had this Nats-Msg-Id inside its
 *   duplicate window) → delivered too: the message is in the stream once, which is the point;
 * - a JetStream error answer (stream full, storage failure...) → failed, with its code as the status;
 * - no ack within the timeout → failed with no status (the stream may have stored it: the retry
 *   carries the same Nats-Msg-Id, so the stream keeps one copy);
 * - "no responders" (the server's 503 status: nobody listens for the reply) → nothing captured the
 *   subject *as a stream would*, but that alone does not prove there is no stream: a stream may be
 *   recovering after a restart. So JetStream is asked which streams capture the subject
 *   ($JS.API.STREAM.NAMES with a subject filter). None (or JetStream not enabled on the server or the
 *   account) → a core publish, then a flush: the server's PONG proves it has processed the PUB, which
 *   is all core NATS can promise → delivered. A stream that captures it, or a JetStream API that does
 *   not answer → failed with no status, retried later: never counted as delivered while a stream that
 *   should keep the message cannot.
 * - a responder that is not JetStream (an application answering requests on the subject) answered →
 *   delivered: the server took the message and someone got it.
 */

export type PublishResult =
  | { ok: true; via: 'jetstream'; stream: string; seq: number; duplicate: boolean }
  | { ok: true; via: 'core' | 'responder' }
  | { ok: false; status?: number; error: string };

interface JsApiError {
  code?: number;
  err_code?: number;
  description?: string;
}

/** JetStream's "not enabled for account" (a server with JetStream, an account without it). */
const JS_NOT_ENABLED_FOR_ACCOUNT = 10039;
const STREAM_NAMES = '$JS.API.STREAM.NAMES';

function parseJson(m: Msg): unknown {
  try {
    return JSON.parse(m.string()) as unknown;
  } catch {
    return undefined;
  }
}

function apiError(v: unknown): JsApiError | undefined {
  const e = typeof v === 'object' && v !== null ? (v as { error?: unknown }).error : undefined;
  return typeof e === 'object' && e !== null ? (e as JsApiError) : undefined;
}

function describeApiError(e: JsApiError): string {
  return `JetStream: ${e.description ?? 'error'}${e.err_code !== undefined ? ` (err_code ${e.err_code})` : ''}`;
}

/** A JetStream error code as an attempt status: it is HTTP-like; 410 is not one JetStream uses, so it cannot disable a subscriber. */
function statusOf(e: JsApiError): number {
  const c = e.code;
  return typeof c === 'number' && c >= 400 && c <= 599 && c !== 410 ? c : 503;
}

function isNoResponders(err: unknown): boolean {
  return err instanceof RequestError && err.isNoResponders();
}

function describeError(err: unknown, timeoutMs: number, what: string): string {
  if (err instanceof errors.TimeoutError || (err instanceof RequestError && err.cause instanceof errors.TimeoutError)) return `no ${what} within ${timeoutMs} ms`;
  return errorMessage(err);
}

/** Which streams capture `subject`: a list (maybe empty), 'no-jetstream', or an error. */
async function streamsFor(nc: NatsConnection, subject: string, timeoutMs: number): Promise<string[] | 'no-jetstream' | { error: string }> {
  if (nc.info?.jetstream !== true) return 'no-jetstream';
  let reply: Msg;
  try {
    reply = await nc.request(STREAM_NAMES, JSON.stringify({ subject }), { timeout: timeoutMs });
  } catch (err) {
    if (isNoResponders(err)) return { error: 'the server has JetStream but its API did not answer (starting up?)' };
    return { error: describeError(err, timeoutMs, 'answer from the JetStream API') };
  }
  const v = parseJson(reply);
  const e = apiError(v);
  if (e) return e.err_code === JS_NOT_ENABLED_FOR_ACCOUNT ? 'no-jetstream' : { error: describeApiError(e) };
  const streams = typeof v === 'object' && v !== null ? (v as { streams?: unknown }).streams : undefined;
  return Array.isArray(streams) ? streams.filter((s): s is string => typeof s === 'string') : [];
}

export async function publish(nc: NatsConnection, msg: NatsMessage, timeoutMs: number): Promise<PublishResult> {
  const h = natsHeaders();
  try {
    for (const [name, value] of Object.entries(msg.headers)) h.set(name, value);
  } catch (err) {
    return { ok: false, status: 400, error: `cannot build the message headers: ${errorMessage(err)}` };
  }
  let reply: Msg;
  try {
    reply = await nc.request(msg.subject, msg.body, { timeout: timeoutMs, headers: h });
  } catch (err) {
    if (!isNoResponders(err)) return { ok: false, error: describeError(err, timeoutMs, 'JetStream ack') };
    return publishWithoutStream(nc, msg, h, timeoutMs);
  }
  const v = parseJson(reply);
  const e = apiError(v);
  if (e) return { ok: false, status: statusOf(e), error: describeApiError(e) };
  const ack = typeof v === 'object' && v !== null ? (v as { stream?: unknown; seq?: unknown; duplicate?: unknown }) : undefined;
  if (ack && typeof ack.stream === 'string' && typeof ack.seq === 'number') {
    return { ok: true, via: 'jetstream', stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate === true };
  }
  return { ok: true, via: 'responder' };
}

async function publishWithoutStream(nc: NatsConnection, msg: NatsMessage, h: ReturnType<typeof natsHeaders>, timeoutMs: number): Promise<PublishResult> {
  const streams = await streamsFor(nc, msg.subject, timeoutMs);
  if (typeof streams === 'object' && !Array.isArray(streams)) return { ok: false, error: `no JetStream ack, and cannot tell whether a stream captures ${msg.subject}: ${streams.error}` };
  if (Array.isArray(streams) && streams.length > 0) {
    return { ok: false, error: `stream ${streams.join(', ')} captures ${msg.subject} but did not answer the publish (stream unavailable?)` };
  }
  try {
    nc.publish(msg.subject, msg.body, { headers: h });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const r = await Promise.race([nc.flush().then(() => 'flushed' as const), timedOut]).finally(() => clearTimeout(timer));
    if (r === 'timeout') return { ok: false, error: `the server did not confirm the publish within ${timeoutMs} ms` };
    return { ok: true, via: 'core' };
  } catch (err) {
    return { ok: false, error: `core publish failed: ${errorMessage(err)}` };
  }
}
