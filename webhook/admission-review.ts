import type { Operation } from 'fast-json-patch';
import { patchText } from './inject/patch-text.js';

/**
 * AdmissionReview in, AdmissionReview out (admission.k8s.io/v1). Pure: the Fastify route parses the body
 * with `parseAdmissionReview`, asks the injector, and answers with `admissionResponse`.
 * https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/#request
 */

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';
const OPERATIONS = ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'] as const;
export type AdmissionOperation = (typeof OPERATIONS)[number];

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

export interface AdmissionRequest {
  uid: string;
  kind: GroupVersionKind;
  operation: AdmissionOperation;
  /** '' for cluster-scoped objects. */
  namespace: string;
  /** '' on a CREATE that relies on generateName (every KFP run). */
  name: string;
  /** The object being admitted; null on DELETE and CONNECT. */
  object: unknown;
  dryRun: boolean;
}

export type ParsedReview = { ok: true; request: AdmissionRequest } | { ok: false; reason: string };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'string' ? JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}...` : v) : `a ${typeof v}`;
}

function optionalString(req: Record<string, unknown>, key: string): string | { reason: string } {
  const v = req[key];
  if (v === undefined || v === null) return '';
  return typeof v === 'string' ? v : { reason: `request.${key} must be a string, got ${describe(v)}` };
}

/** An AdmissionReview body (already JSON-parsed) → the request it carries, or why it is not one (HTTP 400). */
export function parseAdmissionReview(body: unknown): ParsedReview {
  const fail = (reason: string): ParsedReview => ({ ok: false, reason });
  if (!isRecord(body)) return fail(`body must be a JSON object (an AdmissionReview), got ${describe(body)}`);
  if (body.kind !== 'AdmissionReview') return fail(`kind must be "AdmissionReview", got ${describe(body.kind)}`);
  if (body.apiVersion !== ADMISSION_API_VERSION) {
    return fail(`apiVersion must be "${ADMISSION_API_VERSION}" (set admissionReviewVersions: ["v1"]), got ${describe(body.apiVersion)}`);
  }
  const req = body.request;
  if (!isRecord(req)) return fail(`request must be an object, got ${describe(req)}`);
  if (typeof req.uid !== 'string' || req.uid === '') return fail(`request.uid must be a non-empty string, got ${describe(req.uid)}`);
  const op = req.operation;
  if (typeof op !== 'string' || !(OPERATIONS as readonly string[]).includes(op)) {
    return fail(`request.operation must be one of ${OPERATIONS.join(', ')}, got ${describe(op)}`);
  }
  const operation = op as AdmissionOperation;
  const kind = req.kind;
  if (!isRecord(kind) || typeof kind.kind !== 'string' || typeof kind.version !== 'string') {
    return fail(`request.kind must be {group, version, kind}, got ${describe(kind)}`);
  }
  const group = kind.group ?? '';
  if (typeof group !== 'string') return fail(`request.kind.group must be a string, got ${describe(group)}`);
  const namespace = optionalString(req, 'namespace');
  if (typeof namespace !== 'string') return fail(namespace.reason);
  const name = optionalString(req, 'name');
  if (typeof name !== 'string') return fail(name.reason);
  const object = req.object ?? null;
  if ((operation === 'CREATE' || operation === 'UPDATE') && !isRecord(object)) {
    return fail(`request.object must be an object on ${operation}, got ${describe(object)}`);
  }
  if (req.dryRun !== undefined && typeof req.dryRun !== 'boolean') return fail(`request.dryRun must be a boolean, got ${describe(req.dryRun)}`);
  return {
    ok: true,
    request: { uid: req.uid, kind: { group, version: kind.version, kind: kind.kind }, operation, namespace, name, object, dryRun: req.dryRun === true },
  };
}

/**
 * Why this request is not the webhook's business, before the injector sees it (the manifest registers
 * argoproj.io Workflows on CREATE only; this guards against a hand-edited registration).
 */
export function requestSkipReason(req: AdmissionRequest): string | undefined {
  if (req.kind.group !== 'argoproj.io' || req.kind.kind !== 'Workflow') {
    return `not an Argo Workflow (${req.kind.group || 'core'}/${req.kind.version} ${req.kind.kind})`;
  }
  if (req.operation !== 'CREATE') return `operation ${req.operation} is not CREATE`;
  return undefined;
}

export interface AdmissionReviewResponse {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  response: {
    uid: string;
    allowed: true;
    patchType?: 'JSONPatch';
    patch?: string;
    warnings?: string[];
  };
}

/** Kubernetes asks that warnings stay under 120 characters; past 256 it may truncate them. */
export const MAX_WARNING_CHARS = 120;
const WARNING_PREFIX = 'kfp-notify: ';

/** One short, single-line, printable warning; the prefix says which webhook it came from. */
export function shortWarning(text: string): string {
  const flat = `${WARNING_PREFIX}${text.replace(/[^\x20-\x7e]+/g, ' ').replace(/\s+/g, ' ').trim()}`;
  return flat.length <= MAX_WARNING_CHARS ? flat : `${flat.slice(0, MAX_WARNING_CHARS - 3)}...`;
}

export interface AdmissionVerdict {
  /** Omitted or empty: the object is admitted unchanged. */
  patch?: readonly Operation[];
  warnings?: readonly string[];
}

/**
 * The answer to one request. `allowed` is always true: this webhook never blocks a submission, whatever
 * went wrong (see docs/webhook.md, "Fail open").
 */
export function admissionResponse(uid: string, verdict: AdmissionVerdict = {}): AdmissionReviewResponse {
  const response: AdmissionReviewResponse['response'] = { uid, allowed: true };
  if (verdict.patch && verdict.patch.length > 0) {
    response.patchType = 'JSONPatch';
    // The patch travels base64-encoded inside the JSON answer (AdmissionResponse.patch is []byte).
    response.patch = Buffer.from(patchText(verdict.patch), 'utf8').toString('base64');
    ownBase64.set(response, response.patch);
  }
  if (verdict.warnings && verdict.warnings.length > 0) response.warnings = verdict.warnings.map(shortWarning);
  return { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response };
}

// Patches this module base64-encoded itself, by the response that carries them: base64 needs no JSON
// escaping, so admissionResponseJson copies them as they are instead of scanning them (most of the answer).
const ownBase64 = new WeakMap<AdmissionReviewResponse['response'], string>();

/**
 * `JSON.stringify(review)`, written directly: the same text, without Fastify's generic serializer
 * walking the object (the route sends this string).
 */
export function admissionResponseJson(review: AdmissionReviewResponse): string {
  const r = review.response;
  const optional = (key: 'patchType' | 'patch' | 'warnings'): string => (r[key] === undefined ? '' : `,"${key}":${JSON.stringify(r[key])}`);
  const patch = r.patch !== undefined && ownBase64.get(r) === r.patch ? `,"patch":"${r.patch}"` : optional('patch');
  return `{"apiVersion":"${review.apiVersion}","kind":"${review.kind}","response":{"uid":${JSON.stringify(r.uid)},"allowed":${r.allowed}${optional('patchType')}${patch}${optional('warnings')}}}`;
}

export interface SkipClass {
  /** A short, bounded metric label. */
  label: string;
  /** Whether the submitter should hear about it as an admission warning. */
  warn: boolean;
}

// The injector states reasons in prose for people, as "<what>: <detail>"; metrics need a small fixed
// label set, so the leading words pick the class. Expected skips (not a KFP run, already injected, opted
// out) stay quiet; the rest mean "you wanted notifications and this run will not send hook events",
// which deserves a warning.
const SKIP_CLASSES: ReadonlyArray<{ test: RegExp } & SkipClass> = [
  { test: /^already injected/i, label: 'already_injected', warn: false },
  { test: /^opted out/i, label: 'opted_out', warn: false },
  { test: /^not a KFP workflow|pipeline\/runid (label )?is missing/i, label: 'not_kfp', warn: false },
  { test: /^not an Argo Workflow/i, label: 'not_workflow', warn: false },
  { test: /^operation \w+ is not CREATE/i, label: 'not_create', warn: false },
  { test: /^internal error/i, label: 'internal_error', warn: true },
  { test: /^invalid options/i, label: 'invalid_options', warn: true },
  { test: /^(malformed|not a Kubernetes object)/i, label: 'malformed', warn: true },
  { test: /^name collision/i, label: 'name_collision', warn: true },
  { test: /^run id conflict/i, label: 'run_id_conflict', warn: true },
  { test: /^spec\.workflowTemplateRef/i, label: 'template_ref', warn: true },
  { test: /^spec\.(onExit|hooks\.exit)/i, label: 'exit_handler', warn: true },
  { test: /^too large|size limit/i, label: 'size_limit', warn: true },
];

/** A skip reason → its metric label and whether to warn; unknown wording is `other` and warns. */
export function classifySkip(reason: string): SkipClass {
  const hit = SKIP_CLASSES.find((c) => c.test.test(reason));
  return hit ? { label: hit.label, warn: hit.warn } : { label: 'other', warn: true };
}
