import { type EventType, type PayloadFormat, type Subscriber } from '../types.js';
import { compileTemplate } from '../template.js';
import { SAMPLE_SCOPE, isTemplate, subjectProblem } from './subject.js';

/**
 * The keys of a `type: nats` subscriber (docs/nats.md), read in one pure pass from the ConfigMap
 * mapping. Secrets (token, credentials, password, TLS client key...) arrive through `secret`, the same
 * secretKeyRef mechanism as HTTP headers and signing keys; no error message ever quotes a value read
 * from a Secret.
 */

export interface NatsTls {
  /** PEM text: the CA(s) that sign the server's certificate; absent = the system's CAs. */
  ca?: string;
  /** PEM text: a client certificate and its key, for servers that verify clients. */
  cert?: string;
  key?: string;
}

export type NatsAuth = { token: string } | { creds: string } | { user: string; password: string };

export interface NatsTarget {
  /** `nats://host:port` (or `tls://`, which requires TLS), in the order given. */
  servers: string[];
  /** A fixed subject or a template over the event (template.ts syntax, `subject-token` escaping), as written. */
  subject: string;
  auth?: NatsAuth;
  /** Present: TLS is required (a `tls://` URL or a `tls` key). Absent: TLS if the server offers it. */
  tls?: NatsTls;
}

/** Keys only a nats subscriber has. */
export const NATS_KEYS = ['subject', 'token', 'credentials', 'user', 'password', 'tls'] as const;
/** Keys of the shared set that mean nothing to NATS. */
const HTTP_ONLY_KEYS = ['headers', 'signingKey'] as const;
const TLS_KEYS = ['ca', 'cert', 'key'] as const;

export const NATS_FORMATS: readonly PayloadFormat[] = ['cloudevents-binary', 'cloudevents-structured', 'json', 'kfp-operator'];
/** NATS binary mode: the `data` as the body, so an Argo Events NATS EventSource gives Sensors kfp-operator's fields at `body.*`. */
export const DEFAULT_NATS_FORMAT: PayloadFormat = 'cloudevents-binary';
/** kfp-operator publishes run completions only; its envelope has no shape for anything else. */
const RUN_ENDS: readonly EventType[] = ['WorkflowSucceeded', 'WorkflowFailed'];

/** Reads `{ secretKeyRef: { name, key } }` through the parser's resolver, reporting problems under `key`. */
export type ReadSecret = (value: unknown, key: string) => string | undefined;

type Problems = string[];

function show(v: unknown): string {
  const s = typeof v === 'string' ? `'${v}'` : (JSON.stringify(v) ?? String(v));
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** One `nats://host:port` server; credentials in a URL would end up in logs and `kubectl get cm`, so they are refused. */
function server(text: string, problems: Problems): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    problems.push(`url ${show(text.replace(/\/\/[^/@]*@/, '//…@'))} is not a valid URL (expected nats://host:port)`);
    return undefined;
  }
  const shown = show(`${url.protocol}//${url.host}`);
  if (url.protocol !== 'nats:' && url.protocol !== 'tls:') {
    problems.push(`url ${shown} must use nats:// (or tls:// to require TLS), got ${url.protocol.replace(/:$/, '')}`);
    return undefined;
  }
  if (url.username !== '' || url.password !== '') {
    problems.push(`url ${shown}: put credentials in a Secret (token, credentials, or user and password), not in the URL`);
    return undefined;
  }
  if (url.hostname === '') problems.push(`url ${shown} has no host`);
  else if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') problems.push(`url ${shown} must be nats://host:port, with no path or query`);
  else return `${url.protocol}//${url.host}`;
  return undefined;
}

function servers(value: unknown, problems: Problems): string[] | undefined {
  if (typeof value !== 'string' || value.trim() === '') {
    problems.push('url is required for type nats: nats://host:port, comma-separated for a cluster');
    return undefined;
  }
  const parts = value.split(',').map((p) => p.trim());
  if (parts.some((p) => p === '')) {
    problems.push('url has an empty entry: separate servers with single commas');
    return undefined;
  }
  const out = parts.map((p) => server(p, problems));
  return out.every((s): s is string => s !== undefined) ? out : undefined;
}

function subject(value: unknown, problems: Problems): string | undefined {
  if (typeof value !== 'string' || value.trim() === '') {
    problems.push('subject is required for type nats: a subject such as kfp.events, or a template such as kfp.events.{{ Namespace }}.{{ EventType }}');
    return undefined;
  }
  const source = value.trim();
  if (!isTemplate(source)) {
    const bad = subjectProblem(source);
    if (bad) problems.push(`subject ${show(source)}: ${bad}`);
    return bad ? undefined : source;
  }
  // Rendered once against a sample event now: an unknown field name or a broken tag is a config
  // error, not a dead letter at the first delivery.
  const compiled = compileTemplate(source, 'subject-token', SAMPLE_SCOPE);
  if (!compiled.ok) {
    problems.push(`subject: ${compiled.error}`);
    return undefined;
  }
  const sample = compiled.template.render(SAMPLE_SCOPE);
  const bad = sample.ok ? subjectProblem(sample.text) : sample.error;
  if (bad) {
    problems.push(`subject: the template renders ${sample.ok ? show(sample.text) : 'nothing'} for a sample event: ${bad}`);
    return undefined;
  }
  return source;
}

function tls(value: unknown, secret: ReadSecret, problems: Problems): NatsTls | undefined {
  if (value === true) return {};
  if (!isMapping(value)) {
    problems.push('tls must be true or a mapping with ca, cert and key (each { secretKeyRef: { name, key } })');
    return undefined;
  }
  const out: NatsTls = {};
  for (const k of Object.keys(value)) {
    if (!(TLS_KEYS as readonly string[]).includes(k)) problems.push(`tls: unknown key ${show(k)} (allowed: ${TLS_KEYS.join(', ')})`);
  }
  for (const k of TLS_KEYS) {
    if (value[k] === undefined) continue;
    const pem = secret(value[k], `tls.${k}`);
    if (pem !== undefined) out[k] = pem;
  }
  if ((value.cert === undefined) !== (value.key === undefined)) problems.push('tls: cert and key go together (a client certificate needs its key)');
  return out;
}

function auth(m: Record<string, unknown>, secret: ReadSecret, problems: Problems): NatsAuth | undefined {
  const given = (['token', 'credentials', 'user'] as const).filter((k) => m[k] !== undefined);
  if (given.length > 1) {
    problems.push(`give one of token, credentials, or user and password (got ${given.join(', ')})`);
    return undefined;
  }
  if (m.password !== undefined && m.user === undefined) problems.push('password needs user');
  if (m.token !== undefined) {
    const token = secret(m.token, 'token');
    return token === undefined ? undefined : { token };
  }
  if (m.credentials !== undefined) {
    // A .creds file (the user JWT and its NKey seed), as `nsc` writes it.
    const creds = secret(m.credentials, 'credentials');
    if (creds === undefined) return undefined;
    if (!/-----BEGIN NATS USER JWT-----/.test(creds) || !/-----BEGIN USER NKEY SEED-----/.test(creds)) {
      problems.push('credentials: the secret is not a NATS .creds file (a user JWT and an NKey seed block)');
      return undefined;
    }
    return { creds };
  }
  if (m.user !== undefined) {
    if (typeof m.user !== 'string' || m.user === '') problems.push('user must be a non-empty string');
    if (m.password === undefined) problems.push('user needs password: { secretKeyRef: { name, key } }');
    const password = m.password === undefined ? undefined : secret(m.password, 'password');
    return typeof m.user === 'string' && m.user !== '' && password !== undefined ? { user: m.user, password } : undefined;
  }
  return undefined;
}

/**
 * Applies the nats keys to a subscriber the shared parser has filled in (filters, timeout, retry):
 * the target, the format (default `cloudevents-binary`), and, for `kfp-operator`, run ends only.
 */
export function applyNatsKeys(sub: Subscriber, m: Record<string, unknown>, secret: ReadSecret, problems: Problems): void {
  for (const k of HTTP_ONLY_KEYS) if (m[k] !== undefined) problems.push(`${k} is not used by type nats (NATS messages are not signed HTTP requests); remove it`);
  sub.format = DEFAULT_NATS_FORMAT;
  if (m.format !== undefined) {
    if (typeof m.format === 'string' && NATS_FORMATS.includes(m.format as PayloadFormat)) sub.format = m.format as PayloadFormat;
    else problems.push(`format must be one of ${NATS_FORMATS.join(', ')} for type nats (got ${show(m.format)})`);
  }
  if (sub.format === 'kfp-operator') {
    if (sub.eventTypes === undefined || sub.eventTypes.length === 0) sub.eventTypes = [...RUN_ENDS];
    const others = sub.eventTypes.filter((t) => !RUN_ENDS.includes(t));
    if (others.length > 0) {
      problems.push(`format kfp-operator carries run ends only (${RUN_ENDS.join(', ')}), as kfp-operator does; remove ${others.join(', ')} from eventTypes or use another format`);
    }
  }
  const list = servers(m.url, problems);
  const subj = subject(m.subject, problems);
  const a = auth(m, secret, problems);
  const requireTls = list?.some((s) => s.startsWith('tls:')) ?? false;
  const t = m.tls !== undefined ? tls(m.tls, secret, problems) : requireTls ? {} : undefined;
  if (!list || subj === undefined) return;
  sub.nats = { servers: list, subject: subj, ...(a ? { auth: a } : {}), ...(t ? { tls: t } : {}) };
}
