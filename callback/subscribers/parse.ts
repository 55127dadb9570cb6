import { load } from 'js-yaml';
import { EVENT_TYPES, isEventType, type EventType, type PayloadFormat, type RetryPolicy, type SecretRef, type Subscriber } from '../types.js';
import { DEFAULT_JITTER, STANDARD_SCHEDULE, scalePolicy } from '../retry.js';
import { parseSigningSecret } from '../signing.js';
import { durationMs } from './duration.js';
import { errorMessage } from '../../common/error-message.js';
import { NATS_KEYS, applyNatsKeys } from '../nats/config.js';
import { KFP_RUN_KEYS, parseKfpRunTarget } from '../kfp-run/target.js';
import { checkFormatKeys } from './format-keys.js';

/**
 * ConfigMap `data` → subscribers, in one pure pass. Each key is one subscriber, named by the key:
 * - `name: <URI>` is a kfp-event-handler subscriber (its `kfp-event-handler-config` works unchanged:
 *   the documented JSON, POSTed, unsigned);
 * - `name: <YAML mapping>` (or a string holding one, since ConfigMap values are strings) is the full
 *   form, every key documented in docs/subscribers.md.
 * A bad entry is reported (every problem, each naming the subscriber and the key) and left out;
 * it never takes the others down with it.
 */

export const DEFAULT_TIMEOUT_MS = 15_000;
export const DEFAULT_MAX_CONCURRENCY = 4;
export const DEFAULT_FORMAT: PayloadFormat = 'json';
const MAX_TIMEOUT_MS = 300_000;
const MAX_CONCURRENCY = 256;
const MAX_SCHEDULE_STEPS = 50;
const MAX_STEP_MS = 7 * 24 * 3_600_000;

const FORMATS: readonly PayloadFormat[] = ['json', 'cloudevents-structured', 'cloudevents-binary', 'slack', 'teams', 'github', 'template'];
const TYPES = ['http', 'log', 'nats', 'kfp-run'] as const;
const KEYS = ['url', 'type', 'eventTypes', 'namespaces', 'pipelines', 'recurringRuns', 'format', 'template', 'contentType', 'headers', 'signingKey', 'timeout', 'maxConcurrency', 'retry', ...NATS_KEYS] as const;
const RETRY_KEYS = ['schedule', 'jitter'] as const;
/** Headers the format or the signature sets, or the HTTP client owns: a subscriber cannot override them. */
const RESERVED_HEADERS = /^(content-type|content-length|host|connection|transfer-encoding|webhook-id|webhook-timestamp|webhook-signature|ce-.*)$/i;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const LEGACY_URI = /^[a-z][a-z0-9+.-]*:\/\/\S+$/i;

export type ResolveSecret = (ref: SecretRef) => string | undefined;

export interface ParseOptions {
  /** Multiply every retry step (tests: 0.001 turns 5 minutes into 300 ms). Default 1. */
  retryScale?: number;
}

export interface ParsedSubscribers {
  /** Sorted by name, so a reload with the same data yields the same list. */
  subscribers: Subscriber[];
  errors: string[];
}

type Problems = string[];

function show(v: unknown): string {
  const s = typeof v === 'string' ? `'${v}'` : JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A URL for an error message: query strings and user info often carry tokens, so they are cut. */
function showUrl(value: string): string {
  return show(value.trim().replace(/\/\/[^/@?#]*@/, '//…@').replace(/[?#].*$/, '?…'));
}

function checkUrl(value: unknown, key: string, problems: Problems): string | undefined {
  if (typeof value !== 'string' || value.trim() === '') {
    problems.push(`${key} must be an http or https URL`);
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    problems.push(`${key} ${showUrl(value)} is not a valid URL`);
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    problems.push(`${key} ${showUrl(value)} must use http or https (got ${url.protocol.replace(/:$/, '')})`);
    return undefined;
  }
  // Kept as written (URL.toString() would re-encode it); kfp-event-handler posted to it verbatim.
  return value.trim();
}

/** A string or a list of non-empty strings (a single string is a one-item list). */
function stringList(value: unknown, key: string, problems: Problems): string[] | undefined {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.some((x) => typeof x !== 'string' || x.trim() === '')) {
    problems.push(`${key} must be a list of non-empty strings`);
    return undefined;
  }
  return list.map((x: string) => x.trim());
}

function eventTypes(value: unknown, problems: Problems): EventType[] | undefined {
  const list = stringList(value, 'eventTypes', problems);
  if (!list) return undefined;
  const unknown = list.filter((t) => !isEventType(t));
  if (unknown.length > 0) {
    problems.push(`eventTypes: unknown event type ${unknown.map(show).join(', ')} (expected ${EVENT_TYPES.join(', ')})`);
    return undefined;
  }
  return list as EventType[];
}

function secretRef(value: unknown, key: string, problems: Problems): SecretRef | undefined {
  const ref = isMapping(value) ? value.secretKeyRef : undefined;
  if (!isMapping(value) || Object.keys(value).length !== 1 || !isMapping(ref)) {
    problems.push(`${key} must be { secretKeyRef: { name, key } }`);
    return undefined;
  }
  const extra = Object.keys(ref).filter((k) => k !== 'name' && k !== 'key');
  if (extra.length > 0 || typeof ref.name !== 'string' || ref.name === '' || typeof ref.key !== 'string' || ref.key === '') {
    problems.push(`${key}.secretKeyRef must have exactly a non-empty name and key`);
    return undefined;
  }
  return { name: ref.name, key: ref.key };
}

function resolveRef(ref: SecretRef, key: string, resolve: ResolveSecret, problems: Problems): string | undefined {
  const value = resolve(ref);
  if (value === undefined) problems.push(`${key}: secret ${ref.name} has no key ${ref.key}`);
  return value;
}

function headers(value: unknown, resolve: ResolveSecret, problems: Problems, fromSecrets: string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isMapping(value)) {
    problems.push('headers must be a mapping of header name to value');
    return out;
  }
  for (const [name, v] of Object.entries(value)) {
    const key = `headers.${name}`;
    if (!HEADER_NAME.test(name)) problems.push(`${key}: not a valid HTTP header name`);
    else if (RESERVED_HEADERS.test(name)) problems.push(`${key}: set by kfp-notify itself, it cannot be overridden`);
    // A value may come from a Secret, to keep tokens out of the ConfigMap.
    let text: string | undefined;
    if (typeof v === 'string') text = v;
    else if (isMapping(v)) {
      text = resolveRefFrom(v, key, resolve, problems);
      fromSecrets.push(name.toLowerCase());
    }
    else problems.push(`${key} must be a string or { secretKeyRef: { name, key } }`);
    if (text === undefined) continue;
    if (/[\r\n\0]/.test(text)) problems.push(`${key}: the value contains a line break or NUL`);
    else out[name.toLowerCase()] = text;
  }
  return out;
}

function resolveRefFrom(value: unknown, key: string, resolve: ResolveSecret, problems: Problems): string | undefined {
  const ref = secretRef(value, key, problems);
  return ref && resolveRef(ref, key, resolve, problems);
}

function signingKeys(value: unknown, resolve: ResolveSecret, problems: Problems): { ref?: SecretRef; keys?: string[] } {
  const ref = secretRef(value, 'signingKey', problems);
  if (!ref) return {};
  const text = resolveRef(ref, 'signingKey', resolve, problems);
  if (text === undefined) return { ref };
  // Several space-separated secrets = rotation: each signs, the receiver accepts any.
  const keys = text.split(/\s+/).filter((k) => k !== '');
  if (keys.length === 0) problems.push(`signingKey: secret ${ref.name} key ${ref.key} is empty`);
  for (const [i, k] of keys.entries()) {
    const parsed = parseSigningSecret(k);
    // Name the position, never the secret itself: errors are logged.
    if (!parsed.ok) problems.push(`signingKey: secret ${ref.name} key ${ref.key}, secret ${i + 1}: ${parsed.reason}`);
  }
  return { ref, keys };
}

function timeout(value: unknown, problems: Problems): number {
  const ms = durationMs(value, 1);
  if (ms === undefined || ms < 1 || ms > MAX_TIMEOUT_MS) {
    problems.push(`timeout must be a duration from 1ms to ${MAX_TIMEOUT_MS / 1000}s ("10s", "500ms", or milliseconds) (got ${show(value)})`);
    return DEFAULT_TIMEOUT_MS;
  }
  return Math.round(ms);
}

function maxConcurrency(value: unknown, problems: Problems): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_CONCURRENCY) {
    problems.push(`maxConcurrency must be a whole number from 1 to ${MAX_CONCURRENCY} (got ${show(value)})`);
    return DEFAULT_MAX_CONCURRENCY;
  }
  return value;
}

function schedule(value: unknown, problems: Problems): number[] {
  if (value === 'standard') return [...STANDARD_SCHEDULE];
  if (value === 'none') return [];
  if (!Array.isArray(value) || value.length > MAX_SCHEDULE_STEPS) {
    problems.push(`retry.schedule must be 'standard', 'none', or a list of at most ${MAX_SCHEDULE_STEPS} delays (seconds, or "5m"-style durations)`);
    return [...STANDARD_SCHEDULE];
  }
  const steps: number[] = [];
  for (const [i, step] of value.entries()) {
    const ms = durationMs(step, 1000);
    if (ms === undefined || ms > MAX_STEP_MS) problems.push(`retry.schedule[${i}] must be a delay from 0 to 7 days (got ${show(step)})`);
    else steps.push(ms / 1000);
  }
  return steps;
}

function retry(value: unknown, problems: Problems): RetryPolicy {
  const policy: RetryPolicy = { schedule: [...STANDARD_SCHEDULE], jitter: DEFAULT_JITTER };
  if (!isMapping(value)) {
    problems.push('retry must be a mapping with schedule and/or jitter');
    return policy;
  }
  for (const k of Object.keys(value)) {
    if (!(RETRY_KEYS as readonly string[]).includes(k)) problems.push(`retry: unknown key ${show(k)} (allowed: ${RETRY_KEYS.join(', ')})`);
  }
  if (value.schedule !== undefined) policy.schedule = schedule(value.schedule, problems);
  if (value.jitter !== undefined) {
    const j = value.jitter;
    if (typeof j !== 'number' || !(j >= 0 && j <= 1)) problems.push(`retry.jitter must be a number from 0 to 1 (got ${show(j)})`);
    else policy.jitter = j;
  }
  return policy;
}

function defaults(name: string): Subscriber {
  return {
    name,
    type: 'http',
    format: DEFAULT_FORMAT,
    headers: {},
    timeoutMs: DEFAULT_TIMEOUT_MS,
    maxConcurrency: DEFAULT_MAX_CONCURRENCY,
    retry: { schedule: [...STANDARD_SCHEDULE], jitter: DEFAULT_JITTER },
  };
}

function fromMapping(name: string, m: Record<string, unknown>, resolve: ResolveSecret, problems: Problems): Subscriber {
  const sub = defaults(name);
  const kfpRun = m.type === 'kfp-run';
  for (const k of Object.keys(m)) {
    if (kfpRun && (KFP_RUN_KEYS as readonly string[]).includes(k)) continue;
    if (!(KEYS as readonly string[]).includes(k)) problems.push(`unknown key ${show(k)} (allowed: ${[...KEYS, ...(kfpRun ? KFP_RUN_KEYS : [])].join(', ')})`);
  }
  const typeOk = m.type === undefined || (typeof m.type === 'string' && (TYPES as readonly string[]).includes(m.type));
  if (!typeOk) problems.push(`type must be one of ${TYPES.join(', ')} (got ${show(m.type)})`);
  else if (m.type !== undefined) sub.type = m.type as Subscriber['type'];
  // Which URL rule applies depends on the type; with an unknown type, neither does.
  if (typeOk && (sub.type === 'http' || sub.type === 'kfp-run')) {
    if (m.url === undefined) problems.push(`url is required for type ${sub.type}`);
    const url = m.url === undefined ? undefined : checkUrl(m.url, 'url', problems);
    if (url) sub.url = url;
  } else if (typeOk && sub.type !== 'nats' && m.url !== undefined) {
    problems.push('url is not used by type log; remove it or use type http');
  }
  if (m.eventTypes !== undefined) sub.eventTypes = eventTypes(m.eventTypes, problems);
  if (m.namespaces !== undefined) sub.namespaces = stringList(m.namespaces, 'namespaces', problems);
  if (m.pipelines !== undefined) sub.pipelines = stringList(m.pipelines, 'pipelines', problems);
  if (m.recurringRuns !== undefined) sub.recurringRuns = stringList(m.recurringRuns, 'recurringRuns', problems);
  // type kfp-run: which pipeline to start, with what (callback/kfp-run/target.ts, docs/kfp-trigger.md).
  if (kfpRun) {
    const target = parseKfpRunTarget(m, problems);
    if (target) sub.kfpRun = target;
  }
  if (m.format !== undefined && sub.type !== 'nats') {
    if (typeof m.format === 'string' && (FORMATS as readonly string[]).includes(m.format)) sub.format = m.format as PayloadFormat;
    else problems.push(`format must be one of ${FORMATS.join(', ')} (got ${show(m.format)})`);
  }
  if (m.headers !== undefined) {
    const fromSecrets: string[] = [];
    sub.headers = headers(m.headers, resolve, problems, fromSecrets);
    if (fromSecrets.length > 0) sub.secretHeaders = fromSecrets;
  }
  // What a format needs beyond a URL: a compiled template, a GitHub dispatches URL and token.
  Object.assign(sub, checkFormatKeys(sub, m, problems));
  if (m.signingKey !== undefined) {
    const { ref, keys } = signingKeys(m.signingKey, resolve, problems);
    if (ref) sub.signingKeyRef = ref;
    if (keys) sub.signingKeys = keys;
  }
  if (m.timeout !== undefined) sub.timeoutMs = timeout(m.timeout, problems);
  if (m.maxConcurrency !== undefined) sub.maxConcurrency = maxConcurrency(m.maxConcurrency, problems);
  if (m.retry !== undefined) sub.retry = retry(m.retry, problems);
  // type nats: url, subject, format, credentials and TLS (callback/nats/config.ts, docs/nats.md).
  if (typeOk && sub.type === 'nats') applyNatsKeys(sub, m, (v, key) => resolveRefFrom(v, key, resolve, problems), problems);
  else for (const k of NATS_KEYS) if (m[k] !== undefined) problems.push(`${k} is only used by type nats`);
  return sub;
}

/** One ConfigMap entry → a subscriber, or every problem with it (each without the name prefix). */
export function parseSubscriber(name: string, value: unknown, resolve: ResolveSecret): { ok: true; subscriber: Subscriber } | { ok: false; problems: string[] } {
  const problems: Problems = [];
  let v = value;
  if (typeof v === 'string') {
    const text = v.trim();
    if (LEGACY_URI.test(text)) v = text;
    else {
      try {
        v = load(text);
      } catch (err) {
        const first = (errorMessage(err)).split('\n')[0];
        return { ok: false, problems: [`not a URL and not valid YAML: ${first}`] };
      }
    }
  }
  let sub: Subscriber | undefined;
  if (typeof v === 'string') {
    // kfp-event-handler form: the whole value is the endpoint.
    const url = checkUrl(v, 'the URL', problems);
    if (url) sub = { ...defaults(name), url };
  } else if (isMapping(v)) {
    sub = fromMapping(name, v, resolve, problems);
  } else {
    problems.push('value must be a URL or a YAML mapping');
  }
  return sub && problems.length === 0 ? { ok: true, subscriber: sub } : { ok: false, problems };
}

export function parseSubscribers(data: Readonly<Record<string, unknown>>, resolveSecret: ResolveSecret, opts: ParseOptions = {}): ParsedSubscribers {
  const scale = opts.retryScale ?? 1;
  const subscribers: Subscriber[] = [];
  const errors: string[] = [];
  for (const name of Object.keys(data).sort()) {
    const r = parseSubscriber(name, data[name], resolveSecret);
    if (!r.ok) {
      errors.push(...r.problems.map((p) => `subscriber "${name}": ${p}`));
      continue;
    }
    subscribers.push(scale === 1 ? r.subscriber : { ...r.subscriber, retry: scalePolicy(r.subscriber.retry, scale) });
  }
  return { subscribers, errors };
}
