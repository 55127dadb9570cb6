import type { CompiledTemplate, TemplateScope } from '../template.js';
import type { KfpEvent } from '../types.js';
import type { KfpApiVersion, KfpRunTarget, ParamValue } from './target.js';

/**
 * KFP REST requests for one trigger, as data. Pure: the client (client.ts) sends what these build.
 * Field names and shapes follow KFP's protos (integrations.md §5): v2beta1 snake_case with
 * `runtime_config.parameters` as native JSON values; v1beta1 `{name, value}` string pairs and
 * resource references. Nothing outside the proto goes in a body: KFP 2.14+ refuses unknown fields.
 */

export interface RenderedRun {
  displayName: string;
  parameters: Record<string, ParamValue>;
}

/** The run name when the subscriber sets none: says what it runs and what started it. */
export function defaultRunName(target: KfpRunTarget, event: KfpEvent): string {
  return `${target.pipeline} after ${event.RunName || event.PipelineName || 'run'} ${event.KfpRunId}`.slice(0, 512);
}

/** An event as the values a template sees (every field is a string). */
export function eventScope(event: KfpEvent): TemplateScope {
  return { ...event };
}

/** runName and parameters rendered for this event; a render error (a limit, a missing field) is returned. */
export function renderRun(
  target: KfpRunTarget,
  event: KfpEvent,
  compile: (source: string) => CompiledTemplate | string,
): { ok: true; run: RenderedRun } | { ok: false; error: string } {
  const scope = eventScope(event);
  const render = (source: string, key: string): { ok: true; text: string } | { ok: false; error: string } => {
    const t = compile(source);
    if (typeof t === 'string') return { ok: false, error: `${key}: ${t}` };
    const r = t.render(scope);
    return r.ok ? r : { ok: false, error: `${key}: ${r.error}` };
  };
  let displayName = defaultRunName(target, event);
  if (target.runName !== undefined) {
    const r = render(target.runName, 'runName');
    if (!r.ok) return r;
    displayName = r.text;
  }
  if (displayName.trim() === '') return { ok: false, error: 'runName rendered empty; KFP refuses a run without a name' };
  const parameters: Record<string, ParamValue> = {};
  for (const [name, p] of Object.entries(target.parameters)) {
    if ('value' in p) parameters[name] = p.value;
    else {
      const r = render(p.template, `parameters.${name}`);
      if (!r.ok) return r;
      parameters[name] = r.text;
    }
  }
  return { ok: true, run: { displayName, parameters } };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** KFP ids are UUIDs; anything else given for a pipeline, version or experiment is a name. */
export function isKfpId(s: string): boolean {
  return UUID.test(s);
}

export interface Predicate {
  key: string;
  op: 'EQUALS' | 'IS_SUBSTRING';
  value: string;
}

/**
 * The `filter` query value. v2beta1 names the operation `operation`, v1beta1 `op`. KFP's apiserver
 * URL-decodes the already-decoded value once more (list_request_util.go), so the JSON is encoded
 * here once and the query builder encodes it again: a `+` or `%` in a name survives both decodes.
 */
export function filterValue(apiVersion: KfpApiVersion, predicates: readonly Predicate[]): string {
  const opKey = apiVersion === 'v2beta1' ? 'operation' : 'op';
  return encodeURIComponent(JSON.stringify({ predicates: predicates.map((p) => ({ key: p.key, [opKey]: p.op, string_value: p.value })) }));
}

/** A path with its query; undefined values are left out. */
export function withQuery(path: string, query: Readonly<Record<string, string | number | undefined>>): string {
  const parts = Object.entries(query)
    .filter((e): e is [string, string | number] => e[1] !== undefined && e[1] !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.length === 0 ? path : `${path}?${parts.join('&')}`;
}

export interface CreateRunInput {
  run: RenderedRun;
  description: string;
  pipelineId: string;
  versionId: string;
  experimentId?: string;
  serviceAccount?: string;
}

/** POST /apis/v2beta1/runs body (run.proto): pipeline_version_reference, runtime_config.parameters as JSON values. */
export function createRunBodyV2(x: CreateRunInput): Record<string, unknown> {
  return {
    display_name: x.run.displayName,
    description: x.description,
    ...(x.experimentId ? { experiment_id: x.experimentId } : {}),
    pipeline_version_reference: { pipeline_id: x.pipelineId, pipeline_version_id: x.versionId },
    runtime_config: { parameters: x.run.parameters },
    ...(x.serviceAccount ? { service_account: x.serviceAccount } : {}),
  };
}

/** v1 parameters are strings: a non-string value goes as its JSON text (what KFP's v1 client sends). */
function v1Value(v: ParamValue): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** POST /apis/v1beta1/runs body (KFP 1.8 run.proto): pipeline_spec parameters and resource references. */
export function createRunBodyV1(x: CreateRunInput): Record<string, unknown> {
  const refs: Record<string, unknown>[] = [];
  if (x.experimentId) refs.push({ key: { type: 'EXPERIMENT', id: x.experimentId }, relationship: 'OWNER' });
  refs.push({ key: { type: 'PIPELINE_VERSION', id: x.versionId }, relationship: 'CREATOR' });
  return {
    name: x.run.displayName,
    description: x.description,
    pipeline_spec: { parameters: Object.entries(x.run.parameters).map(([name, value]) => ({ name, value: v1Value(value) })) },
    resource_references: refs,
    ...(x.serviceAccount ? { service_account: x.serviceAccount } : {}),
  };
}

/** The error text of a KFP error body: google.rpc.Status `message` (grpc-gateway v2) or `error` (v1). */
export function kfpErrorMessage(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const b = body as Record<string, unknown>;
  const m = typeof b.message === 'string' && b.message !== '' ? b.message : typeof b.error === 'string' ? b.error : undefined;
  return m?.slice(0, 500);
}
