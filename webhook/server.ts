import { Server as HttpsServer, type ServerOptions as HttpsOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Logger } from '../common/logger.js';
import { registerOpsRoutes, type ReadinessCheck } from '../common/ops-routes.js';
import type { InjectOptions } from './inject/options.js';
import { admitText, realInjector, type Admission, type AdmissionAnswer, type Injector } from './admit.js';
import { startAdmitPool } from './admit-pool.js';
import { webhookMetrics, type WebhookMetrics } from './metrics.js';
import { readCertPair, watchCertificate } from './tls-reload.js';
import { errorMessage } from '../common/error-message.js';

/** Fastify's types do not follow the `https` option; `startWebhookServer` checks the real server class. */
export type WebhookApp = FastifyInstance;

export type { Injector };

export const MUTATE_PATH = '/mutate';
/** The manifest sets timeoutSeconds ≤ 5; answering within 2 s leaves the apiserver room to spare. */
export const DEFAULT_TIME_BUDGET_MS = 2000;
/**
 * The apiserver refuses request bodies over 3 MiB, so no Workflow it admits is bigger. A CREATE review
 * carries the object once, re-encoded as JSON plus a small envelope; 6 MiB leaves room for that and for
 * an UPDATE review (object and oldObject) should someone register one, and still bounds memory per request.
 */
export const DEFAULT_BODY_LIMIT_BYTES = 6 * 1024 * 1024;

export interface WebhookDeps {
  logger: Logger;
  registry: Registry;
  /** Called per request, so a reloaded config file applies to the next admission. */
  getInjectOptions: () => InjectOptions;
  inject?: Injector;
  /**
   * Worker threads that parse and inject (webhook/admit-pool.ts); 0 (the default here) admits on the
   * event loop. Only the real injector runs on them: with `inject` set this must be 0.
   */
  injectThreads?: number;
  /** The compiled admit-worker.js (tests running from source point at dist/). */
  injectWorkerUrl?: URL;
  timeBudgetMs?: number;
  bodyLimitBytes?: number;
  /** A request must arrive whole within this (default 10 s): a stalled body never holds a socket open. */
  requestTimeoutMs?: number;
  readiness?: readonly ReadinessCheck[];
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

/** How often Node looks for requests past their timeout (its default, 30 s, would let one linger). */
function connectionsCheckingInterval(requestTimeoutMs: number): number {
  return Math.max(50, Math.min(5_000, Math.floor(requestTimeoutMs / 2)));
}

/** A Content-Length header as a byte count; undefined when absent or not a plain decimal number. */
function contentLength(header: string | undefined): number | undefined {
  if (header === undefined || !/^\d{1,15}$/.test(header)) return undefined;
  return Number(header);
}

function badRequest(message: string): FastifyError {
  return Object.assign(new Error(message), { statusCode: 400, code: 'KFP_NOTIFY_BAD_ADMISSION_REVIEW', name: 'BadRequest' });
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 404: 'Not Found', 413: 'Payload Too Large' };

/** The one reason for every body that is not `application/json`, whether Fastify or our parser refuses it. */
function contentTypeReason(header: string | undefined): string {
  return `content-type must be application/json, got ${header === undefined || header.trim() === '' ? 'none' : JSON.stringify(header)}`;
}

// Fastify's own wording names Fastify internals; say what the apiserver (or a person with curl) did wrong.
// (Empty and invalid JSON never reach here: the route parses the body itself, in admit.ts.)
function clientError(err: FastifyError, bodyLimit: number, contentType: string | undefined): { status: number; message: string } {
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 400, message: contentTypeReason(contentType) };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, message: `body is larger than the ${bodyLimit}-byte limit` };
    default:
      return err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500
        ? { status: err.statusCode, message: err.message }
        : { status: 500, message: 'internal error' };
  }
}

/**
 * The admission app: POST /mutate plus /healthz, /readyz, /metrics. Never listens (tests use
 * `app.inject()` or supertest); `startWebhookServer` serves it over HTTPS.
 */
export function buildWebhookApp(deps: WebhookDeps, https?: HttpsOptions): WebhookApp {
  const inject = deps.inject ?? realInjector;
  const budgetMs = deps.timeBudgetMs ?? DEFAULT_TIME_BUDGET_MS;
  const threads = deps.injectThreads ?? 0;
  if (threads > 0 && deps.inject) throw new Error('a stand-in injector cannot run on inject worker threads: set injectThreads to 0');
  const bodyLimit = deps.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  const metrics = webhookMetrics(deps.registry);
  const loggerInstance: FastifyBaseLogger = deps.logger;
  const app: WebhookApp = Fastify({
    loggerInstance,
    // One line per admission, written by the route with what matters (uid, run, outcome); no per-request noise.
    logController: new LogController({ disableRequestLogging: true }),
    // No per-request child logger (a pino child per admission, only to add Fastify's request counter):
    // the admission line names its request by the AdmissionReview uid instead.
    childLoggerFactory: (logger) => logger,
    bodyLimit,
    requestTimeout: deps.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    ...(https ? { https } : {}),
  });

  // The body reaches the route as text: it is parsed where it is admitted (admit.ts), which may be a
  // worker thread. Fastify's JSON parser would parse it here, on the event loop, for nothing.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  // Only JSON is an AdmissionReview; any other media type is a 400 with a reason, not Fastify's 415.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, _body, done) => {
    done(badRequest(contentTypeReason(req.headers['content-type'])), undefined);
  });

  const inline = (text: string, bodyBytes: number | undefined): Promise<Admission> =>
    admitText(text, bodyBytes, { inject, getInjectOptions: deps.getInjectOptions, budgetMs });
  const pool =
    threads > 0
      ? startAdmitPool({
          threads,
          budgetMs,
          getInjectOptions: deps.getInjectOptions,
          inline,
          logger: deps.logger,
          onRestart: (reason) => metrics.injectWorkerRestarts.inc({ reason }),
          ...(deps.injectWorkerUrl ? { workerUrl: deps.injectWorkerUrl } : {}),
        })
      : undefined;
  const admit = pool ? pool.admit : inline;
  if (pool) {
    // Listening waits for the workers, so the first admissions do not all run inline.
    app.addHook('onReady', () => pool.started());
    app.addHook('onClose', () => pool.close());
  }

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const { status, message } = clientError(err, bodyLimit, req.headers['content-type']);
    if (status >= 500) req.log.error({ err }, 'request failed');
    else req.log.warn({ status, reason: message }, 'bad admission request');
    // routeOptions.url, not req.url: the apiserver calls `/mutate?timeout=5s`.
    if (req.routeOptions.url === MUTATE_PATH && status < 500) metrics.requests.inc({ outcome: 'invalid' });
    return reply.code(status).send({ statusCode: status, error: STATUS_TEXT[status] ?? 'Internal Server Error', message });
  });

  app.post(MUTATE_PATH, async (request, reply) => {
    const text = typeof request.body === 'string' ? request.body : '';
    const admission = await admit(text, contentLength(request.headers['content-length']));
    if (!admission.ok) throw badRequest(admission.reason);
    record(metrics, admission);
    if (admission.outcome === 'failed_open') request.log.error(admission.line, 'admitted without hooks (failed open)');
    else request.log.info(admission.line, admission.outcome === 'injected' ? 'hooks injected' : 'admitted without hooks (skipped)');
    return reply.type('application/json; charset=utf-8').send(admission.json);
  });

  registerOpsRoutes(app, deps.registry, [
    {
      name: 'injector-config',
      check: () => {
        try {
          deps.getInjectOptions();
          return undefined;
        } catch (err) {
          return errorMessage(err);
        }
      },
    },
    ...(deps.readiness ?? []),
  ]);
  return app;
}

function record(metrics: WebhookMetrics, a: AdmissionAnswer): void {
  metrics.requests.inc({ outcome: a.outcome });
  metrics.duration.observe({ outcome: a.outcome }, a.seconds);
  if (a.reasonClass !== undefined) metrics.skips.inc({ reason: a.reasonClass });
  if (a.cause !== undefined) metrics.failedOpen.inc({ cause: a.cause });
  if (a.patchBytes !== undefined) metrics.patchBytes.observe(a.patchBytes);
}

export interface WebhookServerOptions extends WebhookDeps {
  host: string;
  port: number;
  certFile: string;
  keyFile: string;
  /** Period of the certificate files' stat fallback (fs.watch is the fast path). */
  certPollMs?: number;
}

export interface RunningWebhook {
  app: WebhookApp;
  host: string;
  port: number;
  /** `https://<host>:<port>`, the address a client on this machine can use. */
  url: string;
  close(): Promise<void>;
}

// TLS 1.0 and 1.1 are deprecated (RFC 8996); the kube-apiserver speaks 1.2 and 1.3.
const TLS_FLOOR = { minVersion: 'TLSv1.2' } as const;

/**
 * The webhook over HTTPS, with the certificate re-read when its files change (Secret rotation needs no
 * restart). Throws, before listening, if the certificate or key cannot be read or do not match.
 */
export async function startWebhookServer(opts: WebhookServerOptions): Promise<RunningWebhook> {
  const pair = readCertPair(opts.certFile, opts.keyFile);
  const requestTimeout = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  // Given to the https server at construction: Node's HTTPS server does not act on a requestTimeout set
  // afterwards (Fastify's way), so a stalled body would otherwise hold its socket indefinitely.
  const tlsServerOptions = { cert: pair.cert, key: pair.key, ...TLS_FLOOR, requestTimeout, connectionsCheckingInterval: connectionsCheckingInterval(requestTimeout) };
  const app = buildWebhookApp(opts, tlsServerOptions);
  try {
    await app.listen({ host: opts.host, port: opts.port });
  } catch (err) {
    await app.close().catch(() => undefined); // stops the inject workers too
    throw err;
  }
  const server = app.server;
  if (!(server instanceof HttpsServer)) {
    await app.close();
    throw new Error('the webhook server is not an HTTPS server');
  }
  const metrics = webhookMetrics(opts.registry);
  const watch = watchCertificate({
    certFile: opts.certFile,
    keyFile: opts.keyFile,
    current: pair,
    apply: (next) => server.setSecureContext({ cert: next.cert, key: next.key, ...TLS_FLOOR }),
    onResult: (result) => metrics.certReloads.inc({ result }),
    logger: opts.logger,
    pollMs: opts.certPollMs,
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const url = `https://${host}:${port}`;
  opts.logger.info({ url, certFile: opts.certFile, ...pair.info }, 'webhook listening');
  return {
    app,
    host: opts.host,
    port,
    url,
    async close() {
      watch.close();
      await app.close();
    },
  };
}
