import { performance } from 'node:perf_hooks';
import { RUN_ID_LABEL } from '../common/hook-contract.js';
import { parseJsonText } from '../common/json-body.js';
import { injectWorkflow, type InjectResult } from './inject/index.js';
import type { InjectOptions } from './inject/options.js';
import { admissionResponse, admissionResponseJson, classifySkip, parseAdmissionReview, requestSkipReason, type AdmissionRequest, type AdmissionVerdict } from './admission-review.js';
import type { FailOpenCause } from './metrics.js';
import { errorMessage } from '../common/error-message.js';

/**
 * One admission, body text in, answer text out: parse, check, inject, decide, write the answer. No I/O,
 * and a result of plain data, so the same function runs in the route (`--inject-threads 0`, tests) and
 * on the inject worker threads (webhook/admit-pool.ts), which send it back as a message.
 */

/** The real injector, or a stand-in for tests (which may be async, to exercise the time budget). */
export type Injector = (input: unknown, opts: InjectOptions) => InjectResult | Promise<InjectResult>;

export interface AdmitDeps {
  inject: Injector;
  /** Called per admission, so a reloaded config applies to the next one; may throw (fails open). */
  getInjectOptions: () => InjectOptions;
  budgetMs: number;
}

/** What the route needs from an admission: a 400, or the answer with what to log and count. */
export type Admission = { ok: false; reason: string } | AdmissionAnswer;

export interface AdmissionAnswer {
  ok: true;
  /** The AdmissionReview to send, as JSON text. */
  json: string;
  outcome: 'injected' | 'skipped' | 'failed_open';
  /** The log line's fields: who (uid, namespace, name, run) and what (reason, cause, patch ops). */
  line: Record<string, unknown>;
  reasonClass?: string;
  cause?: FailOpenCause;
  /** Bytes of the JSON patch sent, when there is one. */
  patchBytes?: number;
  /** From the parsed review to the written answer. */
  seconds: number;
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

function failOpen(cause: FailOpenCause, detail: Record<string, unknown>, warning: string): Decision {
  return { outcome: 'failed_open', cause, verdict: { warnings: [warning] }, detail: { cause, ...detail } };
}

const timedOut = (budgetMs: number): Decision => failOpen('timeout', { budgetMs }, `hooks not injected: injection took longer than ${budgetMs} ms`);

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
async function decide(req: AdmissionRequest, deps: AdmitDeps, bodyBytes: number | undefined): Promise<Decision> {
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
    result = await withinBudget(() => deps.inject(req.object, { ...deps.getInjectOptions(), ...namespace, ...inputBytes }), deps.budgetMs);
  } catch (err) {
    return failOpen('error', { err: errorMessage(err) }, INTERNAL_ERROR_WARNING);
  }
  // The real injector is synchronous, so the race above cannot cut it off: an answer that arrives
  // past the budget is dropped here instead, so a slow injection never delays the apiserver with a patch.
  if (result === TIMED_OUT || performance.now() - started > deps.budgetMs) return timedOut(deps.budgetMs);
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

function answer(req: AdmissionRequest, decision: Decision, started: number): AdmissionAnswer {
  const review = admissionResponse(req.uid, decision.verdict);
  const patch = review.response.patch;
  return {
    ok: true,
    // Written by hand, not by a generic serializer: the answer is mostly the base64 patch, which needs
    // no escaping and need not be scanned for it.
    json: admissionResponseJson(review),
    outcome: decision.outcome,
    line: { ...identity(req), outcome: decision.outcome, ...decision.detail },
    ...(decision.outcome === 'skipped' ? { reasonClass: decision.reasonClass } : {}),
    ...(decision.outcome === 'failed_open' ? { cause: decision.cause } : {}),
    ...(patch === undefined ? {} : { patchBytes: Buffer.byteLength(patch, 'base64') }),
    seconds: (performance.now() - started) / 1000,
  };
}

/** The parsed request of a body, or why the body is not an AdmissionReview (a 400). */
export function reviewOf(text: string): { ok: true; request: AdmissionRequest } | { ok: false; reason: string } {
  const body = parseJsonText(text, 'an AdmissionReview');
  return body.ok ? parseAdmissionReview(body.value) : body;
}

/** Body text → the admission. `bodyBytes`: the request's Content-Length, when it had one. Never throws. */
export async function admitText(text: string, bodyBytes: number | undefined, deps: AdmitDeps): Promise<Admission> {
  const parsed = reviewOf(text);
  if (!parsed.ok) return parsed;
  const started = performance.now();
  let decision: Decision;
  try {
    decision = await decide(parsed.request, deps, bodyBytes);
    return answer(parsed.request, decision, started);
  } catch (err) {
    // decide() turns the failures it foresees into an allowed answer; this catches the rest (a result
    // that breaks its checks, a patch JSON cannot carry), so that the answer is still allowed, not a 500.
    return answer(parsed.request, failOpen('error', { err: errorMessage(err) }, INTERNAL_ERROR_WARNING), started);
  }
}

/**
 * The answer when the injection never came back (a worker past the time budget, or one that died): the
 * body is parsed here for its uid, so the apiserver still gets an allowed answer, not an error.
 */
export function failedOpenText(text: string, cause: FailOpenCause, budgetMs: number, err?: string): Admission {
  const parsed = reviewOf(text);
  if (!parsed.ok) return parsed;
  const decision = cause === 'timeout' ? timedOut(budgetMs) : failOpen('error', { err: err ?? 'inject worker failed' }, INTERNAL_ERROR_WARNING);
  return answer(parsed.request, decision, performance.now());
}

export const realInjector: Injector = injectWorkflow;
