import { Server as HttpsServer, type ServerOptions as HttpsOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Logger } from '../common/logger.js';
import { RUN_ID_LABEL } from '../common/hook-contract.js';
import { registerOpsRoutes, type ReadinessCheck } from '../common/ops-routes.js';
import { injectWorkflow, type InjectResult } from './inject/index.js';
import type { InjectOptions } from './inject/options.js';
import {
  admissionResponse,
  admissionResponseJson,
  classifySkip,
  parseAdmissionReview,
  requestSkipReason,
  type AdmissionRequest,
  type AdmissionReviewResponse,
  type AdmissionVerdict,
} from './admission-review.js';
import { webhookMetrics, type FailOpenCause, type WebhookMetrics } from './metrics.js';
import { readCertPair, watchCertificate } from './tls-reload.js';

/** Fastify's types do not follow the `https` option; `startWebhookServer` checks the real server class. */
export type WebhookApp = FastifyInstance;

/** The pure injector, or a stand-in for tests (which may be async, to exercise the time budget). */
export type Injector = (input: unknown, opts: InjectOptions) => InjectResult | Promise<InjectResult>;

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

type Decision = { verdict: AdmissionVerdict; detail: Record<string, unknown> } & (
  | { outcome: 'injected' }
  | { outcome: 'skipped'; reasonClass: string }
  | { outcome: 'failed_open'; cause: FailOpenCause }
);

const TIMED_OUT = Symbol('timed out');
const INTERNAL_ERROR_WARNING = 'hooks not injected: internal error (see webhook logs)';

const isPromiseLike = (v: unknown): v is PromiseLike<unknown> => typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';

async function withinBudget<T>(work: () => T | Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  // The real injector is synchronous: its answer needs no timer (the caller checks the clock after).
  const result = work();
  if (!isPromiseLike(result)) return result;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms);
  });
  try {
    // An injector that overruns keeps running; its late answer is dropped (the race already settled).
    return await Promise.race([result, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** What was thrown, as text for the log. Never throws itself, whatever was thrown. */
function errorText(err: unknown): string {
  try {
    return err instanceof Error ? err.message : String(err);
  } catch {
    return 'an error that cannot be printed';
  }
}

function failOpen(cause: FailOpenCause, detail: Record<string, unknown>, warning: string): Decision {
  return { outcome: 'failed_open', cause, verdict: { warnings: [warning] }, detail: { cause, ...detail } };
}

function skip(reason: string): Decision {
  const cls = classifySkip(reason);
  return {
    outcome: 'skipped',
    reasonClass: cls.label,
    verdict: cls.warn ? { warnings: [`hooks not injected: ${reason}`] } : {},
    detail: { reason, reasonClass: cls.label },
  };
}

/** Request → what to answer. Never throws: every failure becomes an allowed, unpatched answer. */
async function decide(req: AdmissionRequest, inject: Injector, getOptions: () => InjectOptions, budgetMs: number, bodyBytes: number | undefined): Promise<Decision> {
  const notOurs = requestSkipReason(req);
  if (notOurs) return skip(notOurs);
  let result: InjectResult | typeof TIMED_OUT;
  const started = performance.now();
  try {
    // The hook token is minted for the request's namespace (the object may not carry one at CREATE).
    const namespace = req.namespace === '' ? {} : { namespace: req.namespace };
    // The body holds the object and the review around it, as the apiserver's JSON (which never writes a
    // value longer than JavaScript re-writes it): a bound of the object's size that spares the injector
    // a serialization of it.
    const inputBytes = bodyBytes === undefined ? {} : { inputBytes: bodyBytes };
    result = await withinBudget(() => inject(req.object, { ...getOptions(), ...namespace, ...inputBytes }), budgetMs);
  } catch (err) {
    return failOpen('error', { err: errorText(err) }, INTERNAL_ERROR_WARNING);
  }
  // The real injector is synchronous, so the race above cannot cut it off: an answer that arrives
  // past the budget is dropped here instead, so a slow injection never delays the apiserver with a patch.
  if (result === TIMED_OUT || performance.now() - started > budgetMs) {
    return failOpen('timeout', { budgetMs }, `hooks not injected: injection took longer than ${budgetMs} ms`);
  }
  if (!Array.isArray(result.patch)) {
    return failOpen('error', { err: 'injector returned no patch list' }, INTERNAL_ERROR_WARNING);
  }
  if (result.outcome === 'skipped') {
    const reason = result.reason ?? 'skipped by the injector';
    // The injector catches its own crashes and reports them as a skip: that is failing open too.
    if (classifySkip(reason).label === 'internal_error') return failOpen('error', { err: reason }, INTERNAL_ERROR_WARNING);
    return skip(reason);
  }
  if (result.patch.length === 0) return skip('already injected: nothing to change');
  return { outcome: 'injected', verdict: { patch: result.patch }, detail: { patchOps: result.patch.length } };
}

function field(v: unknown, key: string): unknown {
  return typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[key] : undefined;
}

/** Who the log line is about: enough to find the run, nothing from the spec. Absent facts are left out. */
function identity(req: AdmissionRequest): Record<string, unknown> {
  const md = field(req.object, 'metadata');
  const runId = field(field(md, 'labels'), RUN_ID_LABEL);
  const generateName = field(md, 'generateName');
  const who: Record<string, unknown> = {
    uid: req.uid,
    namespace: req.namespace,
    name: req.name || (typeof generateName === 'string' ? `${generateName}*` : ''),
  };
  if (typeof runId === 'string') who.kfpRunId = runId;
  if (req.dryRun) who.dryRun = true;
  return who;
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
function clientError(err: FastifyError, bodyLimit: number, contentType: string | undefined): { status: number; message: string } {
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 400, message: contentTypeReason(contentType) };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, message: 'body is empty; expected an AdmissionReview' };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { status: 400, message: `body is not valid JSON: ${err.message}` };
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
  const inject = deps.inject ?? injectWorkflow;
  const budgetMs = deps.timeBudgetMs ?? DEFAULT_TIME_BUDGET_MS;
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

  // Only JSON is an AdmissionReview; any other media type is a 400 with a reason, not Fastify's 415.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, _body, done) => {
    done(badRequest(contentTypeReason(req.headers['content-type'])), undefined);
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const { status, message } = clientError(err, bodyLimit, req.headers['content-type']);
    if (status >= 500) req.log.error({ err }, 'request failed');
    else req.log.warn({ status, reason: message }, 'bad admission request');
    // routeOptions.url, not req.url: the apiserver calls `/mutate?timeout=5s`.
    if (req.routeOptions.url === MUTATE_PATH && status < 500) metrics.requests.inc({ outcome: 'invalid' });
    return reply.code(status).send({ statusCode: status, error: STATUS_TEXT[status] ?? 'Internal Server Error', message });
  });

  app.post(MUTATE_PATH, async (request, reply) => {
    if (request.body === undefined) throw badRequest('body is empty; expected an AdmissionReview');
    const parsed = parseAdmissionReview(request.body);
    if (!parsed.ok) throw badRequest(parsed.reason);
    const started = performance.now();
    let decision: Decision;
    let answer: AdmissionReviewResponse;
    try {
      decision = await decide(parsed.request, inject, deps.getInjectOptions, budgetMs, contentLength(request.headers['content-length']));
      answer = admissionResponse(parsed.request.uid, decision.verdict);
    } catch (err) {
      // decide() turns the failures it foresees into an allowed answer; this catches the rest (a result
      // that breaks its checks, a patch JSON cannot carry), so that the answer is still allowed, not a 500.
      decision = failOpen('error', { err: errorText(err) }, INTERNAL_ERROR_WARNING);
      answer = admissionResponse(parsed.request.uid, decision.verdict);
    }
    record(metrics, decision, answer.response.patch, (performance.now() - started) / 1000);
    const line = { ...identity(parsed.request), outcome: decision.outcome, ...decision.detail };
    if (decision.outcome === 'failed_open') request.log.error(line, 'admitted without hooks (failed open)');
    else request.log.info(line, decision.outcome === 'injected' ? 'hooks injected' : 'admitted without hooks (skipped)');
    // Written by hand (admissionResponseJson), not by Fastify's generic serializer: the answer is
    // mostly the base64 patch, which needs no escaping and need not be scanned for it.
    return reply.type('application/json; charset=utf-8').send(admissionResponseJson(answer));
  });

  registerOpsRoutes(app, deps.registry, [
    {
      name: 'injector-config',
      check: () => {
        try {
          deps.getInjectOptions();
          return undefined;
        } catch (err) {
          return err instanceof Error ? err.message : String(err);
        }
      },
    },
    ...(deps.readiness ?? []),
  ]);
  return app;
}

function record(metrics: WebhookMetrics, d: Decision, patchBase64: string | undefined, seconds: number): void {
  metrics.requests.inc({ outcome: d.outcome });
  metrics.duration.observe({ outcome: d.outcome }, seconds);
  if (d.outcome === 'skipped') metrics.skips.inc({ reason: d.reasonClass });
  if (d.outcome === 'failed_open') metrics.failedOpen.inc({ cause: d.cause });
  if (patchBase64 !== undefined) metrics.patchBytes.observe(Buffer.byteLength(patchBase64, 'base64'));
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
  await app.listen({ host: opts.host, port: opts.port });
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
