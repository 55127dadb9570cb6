import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../../common/logger.js';
import type { DeliveryStore, EventQuery, SubscriberStats } from '../store/types.js';
import type { Subscriber } from '../types.js';
import { EVENT_TYPES } from '../types.js';
import { originOf } from '../attempt-log.js';
import { crossSiteRefusal } from './cross-site.js';
import { APP_PAGE, loginPage } from './pages.js';
import { cookieValue, createSessions, sameSecret, sessionTag, type Session, type Sessions } from './sessions.js';
import { STYLES } from './styles.js';

/**
 * The delivery dashboard, served by the callback under /ui/ (see docs/dashboard.md):
 * - GET /ui/: the page (or the login form without a session); /ui/app.js, /ui/app.css.
 * - POST /ui/login (the admin token, once) sets the session cookie; POST /ui/logout ends it.
 * - GET /ui/api/*: events, a delivery and its attempts, subscribers with their stats (session needed).
 * - POST /ui/api/*: replay a dead letter, replay a subscriber's, re-enable a subscriber (session,
 *   same Origin and the session's CSRF token needed; logged with the operator's name).
 */

export interface DashboardDeps {
  log: Logger;
  adminToken: string;
  store: DeliveryStore;
  subscribers: () => readonly Subscriber[];
  notify: (subscribers?: Iterable<string>) => void;
  now: () => number;
  sessions?: Sessions;
}

export const SESSION_COOKIE = 'kfpn_session';
const PAGE_SIZE = 50;
/**
 * How long one computation of the subscribers' stats serves: they aggregate the last day's attempts
 * (synchronously, in SQLite), so every open tab polling them would otherwise repeat that work.
 */
export const STATS_TTL_MS = 4000;
const MAX_PAGE = 500;

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` on the page's own form posts.
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
} as const;

/** The compiled browser script: beside this module in dist/, or in dist/ when running from source. */
function loadScript(): string {
  const candidates = [new URL('./browser/app.js', import.meta.url), new URL('../../dist/callback/ui/browser/app.js', import.meta.url)];
  for (const c of candidates) {
    try {
      return readFileSync(c, 'utf8');
    } catch {
      // try the next
    }
  }
  throw new Error('dashboard script not built: run npm run build (tsc -p callback/ui/browser/tsconfig.json)');
}

class Refusal extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

function optionalText(q: Record<string, unknown>, key: string): string | undefined {
  const v = q[key];
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string' || v.length > 256) throw new Refusal(400, `${key} must be a string of at most 256 characters`);
  return v;
}

/** A time: ms since the epoch, or an RFC 3339 / ISO 8601 date-time. */
function optionalTime(q: Record<string, unknown>, key: string): number | undefined {
  const v = optionalText(q, key);
  if (v === undefined) return undefined;
  const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isSafeInteger(ms)) throw new Refusal(400, `${key} must be ms since the epoch or an ISO 8601 date-time`);
  return ms;
}

function positiveInt(v: unknown, what: string, max = Number.MAX_SAFE_INTEGER): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) throw new Refusal(400, `${what} must be an integer from 1 to ${max}`);
  return n;
}

/** Parses the events search from a query string; a bad field is a 400 with its reason. */
export function parseEventQuery(q: Record<string, unknown>): EventQuery {
  const eventType = optionalText(q, 'eventType');
  if (eventType !== undefined && !(EVENT_TYPES as readonly string[]).includes(eventType)) {
    throw new Refusal(400, `eventType must be one of ${EVENT_TYPES.join(', ')}`);
  }
  const query: EventQuery = { limit: q.limit === undefined ? PAGE_SIZE : positiveInt(q.limit, 'limit', MAX_PAGE) };
  const runId = optionalText(q, 'runId');
  const pipeline = optionalText(q, 'pipeline');
  const namespace = optionalText(q, 'namespace');
  const from = optionalTime(q, 'from');
  const to = optionalTime(q, 'to');
  if (runId !== undefined) query.runId = runId;
  if (pipeline !== undefined) query.pipeline = pipeline;
  if (namespace !== undefined) query.namespace = namespace;
  if (eventType !== undefined) query.eventType = eventType;
  if (from !== undefined) query.from = from;
  if (to !== undefined) query.to = to;
  if (q.before !== undefined && q.before !== '') query.before = positiveInt(q.before, 'before');
  return query;
}

export function registerDashboard(app: FastifyInstance, deps: DashboardDeps): void {
  const { log, store, now } = deps;
  const sessions = deps.sessions ?? createSessions();
  let script: string | undefined;
  let statsCache: { at: number; value: Promise<Record<string, SubscriberStats>> } | undefined;
  const subscriberStats = (at: number) => {
    if (!statsCache || at - statsCache.at >= STATS_TTL_MS || at < statsCache.at) {
      const value = store.subscriberStats(at);
      statsCache = { at, value };
      value.catch(() => (statsCache = undefined));
    }
    return statsCache.value;
  };

  app.register(async (ui) => {
    ui.addHook('onSend', async (_req, reply) => {
      reply.headers(SECURITY_HEADERS);
    });
    ui.setErrorHandler((err: unknown, _req, reply) => {
      const status = (err as { statusCode?: unknown }).statusCode;
      if (err instanceof Refusal || (typeof status === 'number' && status >= 400 && status < 500)) {
        return reply.code(typeof status === 'number' ? status : 400).send({ error: (err as Error).message });
      }
      log.error({ err }, 'dashboard request failed');
      return reply.code(500).send({ error: 'internal error' });
    });

    const sessionOf = (req: FastifyRequest): Session | undefined => sessions.get(cookieValue(req.headers.cookie, SESSION_COOKIE), now());
    /** The session for an API call; a state-changing one also needs this origin and the session's CSRF token. */
    const requireSession = (req: FastifyRequest, changes: boolean): Session => {
      if (changes) {
        const why = crossSiteRefusal(req.headers, req.protocol);
        if (why) throw new Refusal(403, why);
      }
      const s = sessionOf(req);
      if (!s) throw new Refusal(401, 'not logged in (POST the admin token to /ui/login)');
      if (changes) {
        const given = req.headers['x-csrf-token'];
        if (typeof given !== 'string' || !sameSecret(given, s.csrf)) throw new Refusal(403, 'missing or wrong CSRF token');
      }
      return s;
    };
    const who = (req: FastifyRequest, s: Session) => ({ operator: s.operator, session: sessionTag(s.id), ip: req.ip });
    const cookie = (req: FastifyRequest, value: string, maxAgeS: number) =>
      `${SESSION_COOKIE}=${value}; Path=/ui/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${req.protocol === 'https' ? '; Secure' : ''}`;
    const html = (reply: FastifyReply, body: string, code = 200) => reply.code(code).type('text/html; charset=utf-8').send(body);

    ui.get('/ui', async (_req, reply) => reply.redirect('/ui/', 301));
    ui.get('/ui/', async (req, reply) => html(reply, sessionOf(req) ? APP_PAGE : loginPage(false)));
    ui.get('/ui/app.css', async (_req, reply) => reply.type('text/css; charset=utf-8').send(STYLES));
    ui.get('/ui/app.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').send((script ??= loadScript())));

    ui.post('/ui/login', async (req, reply) => {
      const why = crossSiteRefusal(req.headers, req.protocol);
      if (why) throw new Refusal(403, why);
      const body = (req.body ?? {}) as Record<string, unknown>;
      const token = typeof body.token === 'string' ? body.token : '';
      const operator = typeof body.operator === 'string' && body.operator.trim() !== '' ? body.operator.trim().slice(0, 64) : 'admin';
      if (token === '' || !sameSecret(token, deps.adminToken)) {
        log.warn({ operator, ip: req.ip }, 'dashboard login refused: wrong admin token');
        return html(reply, loginPage(true), 403);
      }
      const s = sessions.create(operator, now());
      log.info(who(req, s), 'dashboard login');
      return reply
        .header('set-cookie', cookie(req, s.id, Math.floor((s.expiresAt - s.createdAt) / 1000)))
        .redirect('/ui/', 303);
    });

    ui.post('/ui/logout', async (req, reply) => {
      const s = requireSession(req, true);
      sessions.end(s.id);
      log.info(who(req, s), 'dashboard logout');
      return reply.header('set-cookie', cookie(req, '', 0)).send({ loggedOut: true });
    });

    ui.get('/ui/api/session', async (req) => {
      const s = requireSession(req, false);
      return { operator: s.operator, csrf: s.csrf, expiresAt: new Date(s.expiresAt).toISOString(), eventTypes: EVENT_TYPES };
    });

    ui.get('/ui/api/events', async (req) => {
      requireSession(req, false);
      const page = await store.listEvents(parseEventQuery(req.query as Record<string, unknown>));
      return { events: page.events, next: page.next ?? null };
    });

    ui.get('/ui/api/deliveries/:id', async (req) => {
      requireSession(req, false);
      const id = positiveInt((req.params as { id: string }).id, 'delivery id');
      const delivery = await store.getDelivery(id);
      if (!delivery) throw new Refusal(404, `no delivery ${id}`);
      return { delivery, attempts: await store.listAttempts(id) };
    });

    ui.get('/ui/api/subscribers', async (req) => {
      requireSession(req, false);
      const at = now();
      const [stats, disabled] = await Promise.all([subscriberStats(at), store.disabledSubscribers()]);
      const configured = deps.subscribers();
      const names = [...new Set([...configured.map((s) => s.name), ...Object.keys(stats), ...Object.keys(disabled)])];
      return {
        at: new Date(at).toISOString(),
        subscribers: names.map((name) => {
          const sub = configured.find((s) => s.name === name);
          return {
            name,
            configured: sub !== undefined,
            type: sub?.type ?? null,
            endpoint: sub?.url ? originOf(sub.url) || null : null,
            disabled: disabled[name] ? { since: new Date(disabled[name].since).toISOString(), reason: disabled[name].reason } : null,
            stats: stats[name] ?? { pending: 0, hour: { delivered: 0, failed: 0, dead: 0 }, day: { delivered: 0, failed: 0, dead: 0 } },
          };
        }),
      };
    });

    ui.post('/ui/api/dead-letters/:id/replay', async (req) => {
      const s = requireSession(req, true);
      const id = positiveInt((req.params as { id: string }).id, 'dead-letter id');
      const ids = await store.replayDeadLetters({ ids: [id] }, now());
      if (ids.length === 0) throw new Refusal(409, `delivery ${id} is not a dead letter`);
      deps.notify();
      log.info({ ...who(req, s), deliveryId: id }, 'dashboard: dead letter replayed');
      return { replayed: ids.length, ids };
    });

    ui.post('/ui/api/subscribers/:name/replay', async (req) => {
      const s = requireSession(req, true);
      const { name } = req.params as { name: string };
      const ids = await store.replayDeadLetters({ subscriber: name }, now());
      if (ids.length > 0) deps.notify([name]);
      log.info({ ...who(req, s), subscriber: name, replayed: ids.length }, "dashboard: a subscriber's dead letters replayed");
      return { replayed: ids.length, ids };
    });

    ui.post('/ui/api/subscribers/:name/enable', async (req) => {
      const s = requireSession(req, true);
      const { name } = req.params as { name: string };
      const was = await store.enable(name);
      if (!was && !deps.subscribers().some((sub) => sub.name === name)) throw new Refusal(404, `no subscriber named ${JSON.stringify(name)}`);
      if (was) deps.notify([name]);
      log.info({ ...who(req, s), subscriber: name, wasDisabled: was }, 'dashboard: subscriber re-enabled');
      return { name, enabled: true, wasDisabled: was };
    });
  });
}
