import { errors, headers as natsHeaders, RequestError, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { errorMessage } from '../../common/error-message.js';
import type { NatsMessage } from './message.js';
import { within } from './within.js';

/**
 * One publish, and when it counts as delivered. Never throws.
 *
 * A JetStream publish cannot be told from a core one by trying it: the publish is a request, and a
 * request is also handed to every core subscriber of the subject (an Argo Events NATS EventSource is
 * one), so "no responders" only comes when nobody at all listens, and a plain subscriber that never
 * answers turns it into a timeout after the message was delivered. So JetStream is asked first which
 * streams capture the subject ($JS.API.STREAM.NAMES with a subject filter; the answer is kept
 * STREAM_LOOKUP_TTL_MS per connection and subject, and forgotten at once when a publish fails):
 * - a stream captures it → a JetStream publish; delivered on the stream's PubAck, or on a duplicate
 *   ack (`duplicate: true`: the stream already holds this Nats-Msg-Id inside its duplicate window, so
 *   the message is there once, which is the point). A JetStream error answer (stream full, storage
 *   failure...) → failed with its code as the status. No answer within the timeout, or no responders
 *   (the stream is unavailable) → failed with no status; the stream may have stored it, and the retry
 *   carries the same Nats-Msg-Id, so it keeps one copy.
 * - no stream captures it, or the server (or the account) has no JetStream → a core publish, then a
 *   flush: the server's PONG proves it has processed the PUB, which is all core NATS can promise →
 *   delivered.
 * - JetStream is enabled but its API does not answer (a server still recovering its streams after a
 *   restart) → failed with no status, retried: never counted as delivered while a stream that should
 *   keep the message might not have it.
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

/** How long which-streams-capture-this-subject is trusted before asking again. */
export const STREAM_LOOKUP_TTL_MS = 30_000;
const MAX_LOOKUPS = 4096;
const lookups = new WeakMap<NatsConnection, Map<string, { at: number; streams: string[] | 'no-jetstream' }>>();

async function capturedBy(nc: NatsConnection, subject: string, timeoutMs: number): Promise<string[] | 'no-jetstream' | { error: string }> {
  let cache = lookups.get(nc);
  if (!cache) lookups.set(nc, (cache = new Map()));
  const hit = cache.get(subject);
  if (hit && Date.now() - hit.at < STREAM_LOOKUP_TTL_MS) return hit.streams;
  const streams = await streamsFor(nc, subject, timeoutMs);
  if (typeof streams === 'object' && !Array.isArray(streams)) return streams;
  if (cache.size >= MAX_LOOKUPS) cache.clear();
  cache.set(subject, { at: Date.now(), streams });
  return streams;
}

function forget(nc: NatsConnection, subject: string): void {
  lookups.get(nc)?.delete(subject);
}

export async function publish(nc: NatsConnection, msg: NatsMessage, timeoutMs: number): Promise<PublishResult> {
  const h = natsHeaders();
  try {
    for (const [name, value] of Object.entries(msg.headers)) h.set(name, value);
  } catch (err) {
    return { ok: false, status: 400, error: `cannot build the message headers: ${errorMessage(err)}` };
  }
  const streams = await capturedBy(nc, msg.subject, timeoutMs);
  if (typeof streams === 'object' && !Array.isArray(streams)) return { ok: false, error: `cannot tell whether a stream captures ${msg.subject}: ${streams.error}` };
  if (streams === 'no-jetstream' || streams.length === 0) return corePublish(nc, msg, h, timeoutMs);
  let reply: Msg;
  try {
    reply = await nc.request(msg.subject, msg.body, { timeout: timeoutMs, headers: h });
  } catch (err) {
    forget(nc, msg.subject);
    if (isNoResponders(err)) return { ok: false, error: `stream ${streams.join(', ')} captures ${msg.subject} but did not answer the publish (stream unavailable?)` };
    return { ok: false, error: describeError(err, timeoutMs, 'JetStream ack') };
  }
  const v = parseJson(reply);
  const e = apiError(v);
  if (e) {
    forget(nc, msg.subject);
    return { ok: false, status: statusOf(e), error: describeApiError(e) };
  }
  const ack = typeof v === 'object' && v !== null ? (v as { stream?: unknown; seq?: unknown; duplicate?: unknown }) : undefined;
  if (ack && typeof ack.stream === 'string' && typeof ack.seq === 'number') {
    return { ok: true, via: 'jetstream', stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate === true };
  }
  // Someone else answered first (an application replying to requests on the subject): the server took the message.
  return { ok: true, via: 'responder' };
}

async function corePublish(nc: NatsConnection, msg: NatsMessage, h: ReturnType<typeof natsHeaders>, timeoutMs: number): Promise<PublishResult> {
  try {
    nc.publish(msg.subject, msg.body, { headers: h });
    if ((await within(nc.flush(), timeoutMs)) === 'timeout') return { ok: false, error: `the server did not confirm the publish within ${timeoutMs} ms` };
    return { ok: true, via: 'core' };
  } catch (err) {
    return { ok: false, error: `core publish failed: ${errorMessage(err)}` };
  }
}
