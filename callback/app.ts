import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import { HOOK_PATH } from '../common/hook-contract.js';
import { bearerToken, verifyHookToken, type HookKey, type TokenSubject, type TokenVerdict } from '../common/hook-token.js';
import type { Logger } from '../common/logger.js';
import { registerOpsRoutes, type ReadinessCheck } from '../common/ops-routes.js';
import type { Ingest } from './ingest.js';
import type { CallbackMetrics } from './metrics.js';
import { isUnresolved, needsWorkflowLookup, normalizeHookCall } from './normalize.js';
import { lookupHint } from './attempt.js';
import { StoreUnavailableError, type DeadLetter, type DeadLetterFilter, type DeliveryStore, type DisabledState, type ReplaySelector } from './store/types.js';
import type { Subscriber, WorkflowSnapshot } from './types.js';
import { errorMessage } from '../common/error-message.js';
import { registerDashboard } from './ui/routes.js';
import { sameSecret } from './ui/sessions.js';

/**
 * The callback's HTTP surface, built from its dependencies; it never listens (runtime.ts does).
 *
 * - POST /v1/hooks: authenticate (hook token) → normalize (after fetching the Workflow when that
 *   helps and an enricher exists) → ingest (durable) → 202 { eventIds, duplicates }.
 * - Admin (Bearer admin token): dead letters list/replay, subscribers list, re-enable.
 * - /ui/: the delivery dashboard (its own login; ui/routes.ts).
 * - /healthz, /readyz, /metrics.
 * Every refusal is a 4xx with `{ error: <reason> }`; a store failure is a 503 so the hook retries.
 */

export interface AppDeps {
  log: Logger;
  hookKeys: readonly HookKey[];
  adminToken: string;
  ingest: Ingest;
  store: DeliveryStore;
  subscribers: () => readonly Subscriber[];
  /** Wake the worker for these subscribers (all when omitted): after a replay or a re-enable. */
  notify: (subscribers?: Iterable<string>) => void;
  enrich?: (namespace: string, workflowName: string, hint?: EnrichHint) => Promise<WorkflowSnapshot | undefined>;
  registry: Registry;
  metrics?: CallbackMetrics;
  readiness?: readonly ReadinessCheck[];
  now?: () => Date;
  /** Largest request body, bytes (default 1 MiB). */
  bodyLimit?: number;
  /** A hook call must arrive whole within this (default 10 s). */
  requestTimeoutMs?: number;
}

/** What the call is about to read from the Workflow, so a cached snapshot that cannot answer it is refetched. */
export interface EnrichHint {
  uid?: string;
  nodeName?: string;
}

const DEFAULT_BODY_LIMIT = 1024 * 1024;
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const FORM = 'application/x-www-form-urlencoded';

/** An HTTP refusal with a reason, mapped to `{ error }` by the one error handler. */
class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A body (parsed as a buffer) as text; bytes that are not UTF-8 are refused, not turned into U+FFFD. */
function bodyText(body: string | Buffer): string {
  if (typeof body === 'string') return body;
  try {
    return utf8.decode(body);
  } catch {
    throw new HttpError(400, 'body is not valid UTF-8');
  }
}

/**
 * One form name or value, decoded as URLSearchParams decodes it (`+` is a space; a `%` without two
 * hex digits stays as it is, since Argo's http mode pastes values unescaped), except that escaped
 * bytes which are not UTF-8 are refused rather than turned into U+FFFD.
 */
function formText(s: string): string {
  // Most values need no decoding at all (ids, names, phases): skip the regex and the decoder for them.
  if (!s.includes('%') && !s.includes('+')) return s;
  try {
    return decodeURIComponent(s.replaceAll('+', ' ').replace(/%(?![0-9a-fA-F]{2})/g, '%25'));
  } catch {
    throw new HttpError(400, 'body is not valid UTF-8 once percent-decoded');
  }
}

function parseForm(body: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const pair of body.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const k = formText(eq < 0 ? pair : pair.slice(0, eq));
    if (Object.hasOwn(fields, k)) throw new HttpError(400, `field ${k} appears more than once`);
    fields[k] = formText(eq < 0 ? '' : pair.slice(eq + 1));
  }
  return fields;
}

/**
 * Hook tokens already verified, each with the key that verified it: a run's hook calls all carry the
 * same token for the same subject, so the HMAC is computed once per run rather than once per call.
 * A hit counts only while that key is still configured (a rotated-out key stops verifying at once).
 */
const VERIFIED_TOKENS_MAX = 4096;

function tokenVerifier(keys: readonly HookKey[]): (token: string | undefined, subject: TokenSubject) => TokenVerdict {
  const verified = new Map<string, HookKey>();
  return (token, subject) => {
    const kid = token?.split('.')[1];
    const cacheKey = `${token}\n${subject.namespace}\n${subject.kfpRunId}`;
    const key = verified.get(cacheKey);
    if (key && keys.find((k) => k.kid === kid) === key) return { ok: true };
    const verdict = verifyHookToken(keys, token, subject);
    const by = keys.find((k) => k.kid === kid);
    if (verdict.ok && by) {
      if (verified.size >= VERIFIED_TOKENS_MAX) verified.clear();
      verified.set(cacheKey, by);
    }
    return verdict;
  };
}

function asObject(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpError(400, `body must be a JSON object or ${FORM} fields`);
  }
  return body as Record<string, unknown>;
}

const text = (v: unknown): string => (typeof v === 'string' ? v : '');

function deadLetterView(d: DeadLetter) {
  return {
    id: d.id,
    subscriber: d.subscriber,
    eventId: d.eventId,
    attempts: d.attempts,
    lastStatus: d.lastStatus ?? null,
    lastError: d.lastError ?? null,
    deadAt: new Date(d.deadAt).toISOString(),
    event: d.event,
  };
}

function disabledView(state: DisabledState | undefined) {
  return state ? { since: new Date(state.since).toISOString(), reason: state.reason } : null;
}

/** Where a subscriber sends, without anything that may be a secret (path tokens, query, userinfo). */
function endpointOf(sub: Subscriber): string | null {
  // NATS: the servers (credentials never sit in them: the parser refuses user info in the URL).
  if (sub.nats) return sub.nats.servers.join(',');
  if (!sub.url) return null;
  try {
    return new URL(sub.url).origin;
  } catch {
    return null;
  }
}

/** A time bound of a dead-letter filter: an ISO 8601 time or ms since the epoch. */
function timeBound(value: unknown, name: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const ms = typeof value === 'number' ? value : typeof value === 'string' ? (/^\d+$/.test(value) ? Number(value) : Date.parse(value)) : NaN;
  if (!Number.isFinite(ms)) throw new HttpError(400, `${name} must be an ISO 8601 time or milliseconds since the epoch`);
  return ms;
}

/** `run`, `subscriber`, `since`, `until` (query string or replay body) → a store filter. */
export function parseDeadLetterFilter(o: Record<string, unknown>): DeadLetterFilter {
  const name = (v: unknown, key: string): string | undefined => {
    if (v === undefined || v === '') return undefined;
    if (typeof v !== 'string') throw new HttpError(400, `${key} must be a string`);
    return v;
  };
  const subscriber = name(o.subscriber, 'subscriber');
  const kfpRunId = name(o.run, 'run');
  const since = timeBound(o.since, 'since');
  const until = timeBound(o.until, 'until');
  return { ...(subscriber ? { subscriber } : {}), ...(kfpRunId ? { kfpRunId } : {}), ...(since !== undefined ? { since } : {}), ...(until !== undefined ? { until } : {}) };
}

function parseReplay(body: unknown): ReplaySelector {
  const b = asObject(body ?? {});
  const given = (['ids', 'subscriber', 'all', 'filter'] as const).filter((k) => b[k] !== undefined);
  if (given.length !== 1) {
    throw new HttpError(400, 'give exactly one of: ids (a list of dead-letter ids), subscriber (a name), all (true), filter ({run, subscriber, since, until})');
  }
  if (b.filter !== undefined) {
    const filter = parseDeadLetterFilter(asObject(b.filter));
    if (Object.keys(filter).length === 0) throw new HttpError(400, 'filter needs at least one of run, subscriber, since, until');
    return { filter };
  }
  if (b.ids !== undefined) {
    const ids = b.ids;
    if (!Array.isArray(ids) || ids.length === 0 || !ids.every((i) => Number.isSafeInteger(i) && (i as number) > 0)) {
      throw new HttpError(400, 'ids must be a non-empty list of positive integers');
    }
    return { ids: ids as number[] };
  }
  if (b.subscriber !== undefined) {
    if (typeof b.subscriber !== 'string' || b.subscriber === '') throw new HttpError(400, 'subscriber must be a non-empty string');
    return { subscriber: b.subscriber };
  }
  if (b.all !== true) throw new HttpError(400, 'all must be true');
  return { all: true };
}

export function buildApp(deps: AppDeps): FastifyInstance {
  const { log, store, metrics } = deps;
  const now = deps.now ?? (() => new Date());
  const bodyLimit = deps.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const verifyToken = tokenVerifier(deps.hookKeys);
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    // No pino child logger per request (Fastify's default, only to add its request counter): the
    // routes log through `log` with the fields that name the call (run, namespace, event).
    childLoggerFactory: (logger) => logger,
    bodyLimit,
    // A hook call arrives whole in milliseconds (curl --max-time 10); a stalled one must not hold a
    // socket. Node acts on requestTimeout only when given at construction, hence `http` (not Fastify's own).
    requestTimeout: deps.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    http: {
      requestTimeout: deps.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      connectionsCheckingInterval: Math.max(50, Math.min(5_000, Math.floor((deps.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS) / 2))),
    },
  });

  // Hook calls are form fields or JSON; anything else is a 415, not a string to guess at.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser(FORM, { parseAs: 'buffer', bodyLimit }, (_req, body, done) => {
    try {
      done(null, parseForm(bodyText(body)));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  // Fastify's own JSON parsing (proto-poisoning checks included), on text decoded strictly.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit }, (req, body, done) => {
    let text: string;
    try {
      text = bodyText(body);
    } catch (err) {
      return done(err as Error, undefined);
    }
    parseJson(req, text, done);
  });

  app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof StoreUnavailableError) {
      log.error({ err, url: req.url }, 'store unavailable; answered 503');
      return reply.code(503).header('retry-after', '1').send({ error: err.message });
    }
    const status = (err as { statusCode?: unknown }).statusCode;
    const message = errorMessage(err);
    if (typeof status === 'number' && status >= 400 && status < 500) {
      const code = (err as { code?: unknown }).code;
      const reason =
        code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
          ? `unsupported content type ${JSON.stringify(req.headers['content-type'] ?? '')}; send ${FORM} or application/json`
          : code === 'FST_ERR_CTP_BODY_TOO_LARGE'
            ? `body larger than ${bodyLimit} bytes`
            : message;
      return reply.code(status).send({ error: reason });
    }
    log.error({ err, url: req.url }, 'request failed');
    return reply.code(500).send({ error: 'internal error' });
  });

  app.post(
    HOOK_PATH,
    {
      onResponse: (_req, reply, done) => {
        metrics?.hookCalls.inc({ code: String(reply.statusCode) });
        done();
      },
    },
    async (req, reply) => {
      const fields = asObject(req.body);
      const verdict = verifyToken(bearerToken(req.headers.authorization), {
        namespace: text(fields.namespace),
        kfpRunId: text(fields.kfpRunId),
      });
      if (!verdict.ok) {
        log.warn({ status: verdict.status, reason: verdict.reason, namespace: text(fields.namespace), kfpRunId: text(fields.kfpRunId) }, 'hook call refused');
        return reply.code(verdict.status).send({ error: verdict.reason });
      }
      let workflow: WorkflowSnapshot | undefined;
      if (deps.enrich && needsWorkflowLookup(fields)) {
        // Best effort: without the Workflow the call still yields an event when its fields suffice.
        workflow = await deps.enrich(text(fields.namespace), text(fields.workflowName), lookupHint(fields)).catch((err: unknown) => {
          log.warn({ err, namespace: text(fields.namespace), workflowName: text(fields.workflowName) }, 'workflow lookup failed');
          return undefined;
        });
      }
      const receivedAt = now();
      const normalized = normalizeHookCall(fields, workflow ? { receivedAt, workflow } : { receivedAt });
      if (!normalized.ok) {
        log.warn({ status: normalized.status, reason: normalized.reason, kfpRunId: text(fields.kfpRunId), event: text(fields.event) }, 'hook call refused');
        return reply.code(normalized.status).send({ error: normalized.reason });
      }
      const result = await deps.ingest(normalized.events);
      return reply.code(202).send(result);
    },
  );

  app.register(async (admin) => {
    admin.addHook('onRequest', async (req, reply) => {
      const token = bearerToken(req.headers.authorization);
      if (!token) return reply.code(401).send({ error: 'missing bearer token (the admin token)' });
      if (!sameSecret(token, deps.adminToken)) return reply.code(403).send({ error: 'wrong admin token' });
    });

    /** A subscriber name that is neither configured nor has anything stored: a 404, not an empty answer. */
    const unknownSubscriber = async (name: string | undefined, found: number): Promise<boolean> =>
      name !== undefined && found === 0 && !deps.subscribers().some((s) => s.name === name) && (await store.listDeadLetters({ subscriber: name, limit: 1 })).length === 0;

    admin.get('/v1/dead-letters', async (req, reply) => {
      const q = req.query as Record<string, unknown>;
      const limit = q.limit === undefined ? 1000 : Number(q.limit);
      if (!Number.isSafeInteger(limit) || limit < 1 || limit > 100_000) throw new HttpError(400, 'limit must be an integer from 1 to 100000');
      const filter = parseDeadLetterFilter(q);
      const rows = await store.listDeadLetters({ ...filter, limit });
      if (await unknownSubscriber(filter.subscriber, rows.length)) return reply.code(404).send({ error: `no subscriber named ${JSON.stringify(filter.subscriber)}` });
      return { deadLetters: rows.map(deadLetterView) };
    });

    admin.post('/v1/dead-letters/replay', async (req, reply) => {
      const selector = parseReplay(req.body);
      const ids = await store.replayDeadLetters(selector, now().getTime());
      if (ids.length > 0) deps.notify();
      const subscriber = 'subscriber' in selector ? selector.subscriber : 'filter' in selector ? selector.filter.subscriber : undefined;
      if (await unknownSubscriber(subscriber, ids.length)) return reply.code(404).send({ error: `no subscriber named ${JSON.stringify(subscriber)}` });
      // Ids asked for that were not dead letters (never were, or replayed already): named, so a typo is not a silent no-op.
      const notFound = 'ids' in selector ? selector.ids.filter((id) => !ids.includes(id)) : [];
      log.info({ selector, replayed: ids.length, notFound }, 'dead letters replayed');
      return { replayed: ids.length, ids, notFound };
    });

    admin.get('/v1/subscribers', async () => {
      const [disabled, depth] = await Promise.all([store.disabledSubscribers(), store.queueDepth()]);
      const configured = deps.subscribers();
      const names = new Set(configured.map((s) => s.name));
      const views = configured.map((s) => ({
        name: s.name,
        type: s.type,
        endpoint: endpointOf(s),
        format: s.format,
        eventTypes: s.eventTypes ?? [],
        namespaces: s.namespaces ?? [],
        pipelines: s.pipelines ?? [],
        signed: (s.signingKeys?.length ?? 0) > 0,
        timeoutMs: s.timeoutMs,
        maxConcurrency: s.maxConcurrency,
        retrySchedule: s.retry.schedule,
        configured: true,
        disabled: disabledView(disabled[s.name]),
        queueDepth: depth[s.name] ?? 0,
      }));
      // Disabled (or still queued for) but no longer in the config: shown so they can be cleaned up.
      const orphans = [...new Set([...Object.keys(disabled), ...Object.keys(depth)])]
        .filter((n) => !names.has(n))
        .map((n) => ({
          name: n,
          configured: false,
          disabled: disabledView(disabled[n]),
          queueDepth: depth[n] ?? 0,
        }));
      return { subscribers: [...views, ...orphans] };
    });

    admin.post('/v1/subscribers/:name/enable', async (req, reply) => {
      const { name } = req.params as { name: string };
      const was = await store.enable(name);
      if (!was && !deps.subscribers().some((s) => s.name === name)) {
        return reply.code(404).send({ error: `no subscriber named ${JSON.stringify(name)}` });
      }
      if (was) {
        log.info({ subscriber: name }, 'subscriber re-enabled');
        deps.notify([name]);
      }
      return { name, enabled: true, wasDisabled: was };
    });
  });

  registerDashboard(app, { log, adminToken: deps.adminToken, store, subscribers: deps.subscribers, notify: deps.notify, now: () => now().getTime() });
  registerOpsRoutes(app, deps.registry, deps.readiness ?? []);
  return app;
}
