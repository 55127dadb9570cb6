import { compileTemplate, type TemplateScope } from '../template.js';
import { KFP_EVENT_FIELDS } from '../types.js';

/**
 * A `type: kfp-run` subscriber's own keys → what to start, checked when the config is read. Pure.
 * Templates (runName, string parameters) are compiled here against a sample event, so a typo in a
 * field name is a config error naming the key, not a dead letter at the first matching event; the
 * target keeps their sources (plain data: configs are compared on reload), and the transport
 * compiles them again, once per source.
 */

export type KfpApiVersion = 'v2beta1' | 'v1beta1';
export const KFP_API_VERSIONS: readonly KfpApiVersion[] = ['v2beta1', 'v1beta1'];

/** A JSON value as KFP's `google.protobuf.Value` takes it. */
export type ParamValue = string | number | boolean | null | ParamValue[] | { [key: string]: ParamValue };

/** One run parameter: a template rendered to a string, or a literal of any JSON type (numbers stay numbers). */
export type RunParameter = { template: string } | { value: ParamValue };

export interface KfpRunTarget {
  apiVersion: KfpApiVersion;
  /** Display name or id of the pipeline to start. */
  pipeline: string;
  /** Version name or id; the newest version when absent. */
  pipelineVersion?: string;
  /** Experiment name or id; KFP's default experiment when absent (single-user KFP only). */
  experiment?: string;
  namespace?: string;
  /** Template source; absent → defaultRunName(). */
  runName?: string;
  parameters: Record<string, RunParameter>;
  serviceAccount?: string;
  /** A projected ServiceAccount token (audience pipelines.kubeflow.org), re-read when it changes. */
  tokenFile?: string;
}

/** The keys a kfp-run subscriber adds to the common ones (url, headers, filters, retry, ...). */
export const KFP_RUN_KEYS = ['pipeline', 'pipelineVersion', 'experiment', 'namespace', 'runName', 'parameters', 'serviceAccount', 'apiVersion', 'tokenFile'] as const;

/** Every event field, with a value of its own: what templates are checked against when the config is read. */
export const SAMPLE_SCOPE: TemplateScope = Object.fromEntries(KFP_EVENT_FIELDS.map((f) => [f, `sample-${f}`]));

const MAX_NAME = 512;
const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function name(m: Record<string, unknown>, key: string, problems: string[], required = false): string | undefined {
  const v = m[key];
  if (v === undefined) {
    if (required) problems.push(`${key} is required for type kfp-run`);
    return undefined;
  }
  if (typeof v !== 'string' || v.trim() === '' || v.length > MAX_NAME || /[\u0000-\u001f]/.test(v)) {
    problems.push(`${key} must be a non-empty name or id of at most ${MAX_NAME} characters`);
    return undefined;
  }
  return v.trim();
}

function template(source: unknown, key: string, problems: string[]): string | undefined {
  if (typeof source !== 'string' || source.trim() === '') {
    problems.push(`${key} must be a non-empty template string`);
    return undefined;
  }
  const compiled = compileTemplate(source, 'none', SAMPLE_SCOPE);
  if (!compiled.ok) {
    problems.push(`${key}: ${compiled.error}`);
    return undefined;
  }
  return source;
}

function isParamValue(v: unknown): v is ParamValue {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return true;
  if (typeof v === 'number') return Number.isFinite(v);
  if (Array.isArray(v)) return v.every(isParamValue);
  return isMapping(v) && Object.values(v).every(isParamValue);
}

function parameters(value: unknown, problems: string[]): Record<string, RunParameter> {
  const out: Record<string, RunParameter> = {};
  if (!isMapping(value)) {
    problems.push('parameters must be a mapping of parameter name to value');
    return out;
  }
  for (const [k, v] of Object.entries(value)) {
    const key = `parameters.${k}`;
    if (!PARAM_NAME.test(k)) problems.push(`${key}: not a valid KFP parameter name`);
    else if (v === '') out[k] = { value: '' };
    else if (typeof v === 'string') {
      const source = template(v, key, problems);
      if (source !== undefined) out[k] = { template: source };
    } else if (isParamValue(v)) out[k] = { value: v };
    else problems.push(`${key} must be a string (a template), a number, a boolean, a list or a mapping`);
  }
  return out;
}

/** The kfp-run keys of one subscriber mapping, or undefined with the problems added. */
export function parseKfpRunTarget(m: Readonly<Record<string, unknown>>, problems: string[]): KfpRunTarget | undefined {
  const before = problems.length;
  const target: KfpRunTarget = { apiVersion: 'v2beta1', pipeline: name(m, 'pipeline', problems, true) ?? '', parameters: {} };
  if (m.apiVersion !== undefined) {
    if (typeof m.apiVersion === 'string' && (KFP_API_VERSIONS as readonly string[]).includes(m.apiVersion)) target.apiVersion = m.apiVersion as KfpApiVersion;
    else problems.push(`apiVersion must be one of ${KFP_API_VERSIONS.join(', ')} (got ${JSON.stringify(m.apiVersion)})`);
  }
  for (const key of ['pipelineVersion', 'experiment', 'namespace', 'serviceAccount', 'tokenFile'] as const) {
    const v = name(m, key, problems);
    if (v !== undefined) target[key] = v;
  }
  if (m.runName !== undefined) {
    const source = template(m.runName, 'runName', problems);
    if (source !== undefined) target.runName = source;
  }
  if (m.parameters !== undefined) target.parameters = parameters(m.parameters, problems);
  return problems.length === before ? target : undefined;
}
