import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A FAKE KFP API server (ml-pipeline's REST gateway) on 127.0.0.1, port 0: no real KFP backend can run
 * here (it needs MySQL, Argo and a cluster), so this answers the paths and shapes KFP 2.15 does
 * (integrations.md §5) for what a trigger uses:
 * - v2beta1: pipelines (list, by id, `/pipelines/names/{name}`), versions (list, by id), experiments
 *   (list, by id), runs (list, get, create); v1beta1: the same with `id`/`name`, resource references and
 *   `{name, value}` parameters;
 * - lists: `filter` (URL-decoded twice, as list_request_util.go does; `operation` in v2, `op` in v1;
 *   EQUALS / NOT_EQUALS / IS_SUBSTRING; an unknown key is a 400), `sort_by` (`field [asc|desc]`),
 *   `page_size` (0 → 20, > 200 → 200) and base64 `page_token`s that carry the first page's filter;
 *   empty fields omitted (`{}` for no match);
 * - create: unknown JSON fields → 400 (2.14+), empty display name → 400, a parameter the pipeline does
 *   not declare → 400 "parameter(s) provided are not required by pipeline", a declared type mismatch
 *   → 400; errors as google.rpc.Status `{code, message}`;
 * - auth: with `tokens`, every call needs `Authorization: Bearer <one of them>` (else 401).
 * Faults for tests: `hangNextCreates(n)` makes the run and never answers; `failNext(n, status)`;
 * `ignoreFilters(true)` lists everything, page by page.
 */

export type ParamType = 'STRING' | 'NUMBER_INTEGER' | 'NUMBER_DOUBLE' | 'BOOLEAN' | 'LIST' | 'STRUCT';

export interface FakeRun {
  id: string;
  displayName: string;
  description: string;
  experimentId?: string;
  namespace?: string;
  pipelineId: string;
  versionId: string;
  parameters: Record<string, unknown>;
  serviceAccount?: string;
  createdAt: string;
  apiVersion: 'v2beta1' | 'v1beta1';
}

interface Pipeline {
  id: string;
  displayName: string;
  name: string;
  namespace?: string;
  createdAt: string;
}
interface Version {
  id: string;
  pipelineId: string;
  displayName: string;
  createdAt: string;
  params: Record<string, ParamType>;
}
interface Experiment {
  id: string;
  displayName: string;
  namespace?: string;
  createdAt: string;
}

export interface FakeKfpApi {
  url: string;
  addPipeline(p: { displayName: string; name?: string; namespace?: string; params?: Record<string, ParamType> }): { pipelineId: string; versionId: string };
  addVersion(pipelineId: string, v: { displayName: string; params?: Record<string, ParamType> }): string;
  addExperiment(displayName: string, namespace?: string): string;
  /** A run started outside the trigger (the upstream run of a chain). */
  addRun(r: { pipelineId: string; versionId: string; displayName?: string; description?: string; experimentId?: string }): string;
  runs(): FakeRun[];
  /** Every Authorization header value seen, in order. */
  authorizations: string[];
  /** Paths (without query) of the requests seen, in order. */
  requests: string[];
  setTokens(tokens: string[] | undefined): void;
  hangNextCreates(n: number): void;
  failNext(n: number, status: number): void;
  /** Answer lists as if `filter` were absent (a KFP that does not filter on a key): callers must page and check. */
  ignoreFilters(on: boolean): void;
  close(): Promise<void>;
}

type Json = Record<string, unknown>;
type Item = Record<string, string | undefined>;

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** grpc codes for the statuses used (google.rpc.Status.code). */
const GRPC_CODE: Record<number, number> = { 400: 3, 401: 16, 404: 5, 500: 13, 503: 14 };

/** Go's url.QueryUnescape: `+` is a space, then percent-decoding. */
function queryUnescape(s: string): string {
  return decodeURIComponent(s.replace(/\+/g, ' '));
}

interface ListOptions {
  filter: { key: string; op: string; value: string }[];
  sortKey: string;
  desc: boolean;
  offset: number;
  size: number;
}

function listOptions(q: URLSearchParams, v2: boolean, keys: Record<string, string>, defaultSort: string): ListOptions {
  const token = q.get('page_token');
  if (token) {
    try {
      return JSON.parse(Buffer.from(token, 'base64').toString('utf8')) as ListOptions;
    } catch {
      throw new ApiError(400, 'Invalid page token');
    }
  }
  const rawSize = Number(q.get('page_size') ?? '0');
  if (!Number.isInteger(rawSize) || rawSize < 0) throw new ApiError(400, 'Invalid input error: The page size should be greater than 0');
  const size = rawSize === 0 ? 20 : Math.min(rawSize, 200);
  let sortKey = defaultSort;
  let desc = false;
  const sortBy = q.get('sort_by');
  if (sortBy) {
    const m = /^(\S+)(?: (asc|desc))?$/i.exec(sortBy.trim());
    if (!m || !keys[m[1] as string]) throw new ApiError(400, `Invalid input error: Invalid sorting field: "${sortBy}"`);
    sortKey = keys[m[1] as string] as string;
    desc = (m[2] ?? '').toLowerCase() === 'desc';
  }
  const filter: ListOptions['filter'] = [];
  const rawFilter = q.get('filter');
  if (rawFilter) {
    let parsed: Json;
    try {
      parsed = JSON.parse(queryUnescape(rawFilter)) as Json;
    } catch (err) {
      throw new ApiError(400, `Invalid input error: failed to parse valid filter from "${rawFilter}": ${(err as Error).message}`);
    }
    const preds = Array.isArray(parsed.predicates) ? (parsed.predicates as Json[]) : [];
    for (const p of preds) {
      const allowed = v2 ? ['key', 'operation', 'string_value', 'stringValue'] : ['key', 'op', 'string_value', 'stringValue'];
      const extra = Object.keys(p).filter((k) => !allowed.includes(k));
      if (extra.length > 0) throw new ApiError(400, `Invalid input error: unknown field "${extra[0]}" in filter predicate`);
      const key = String(p.key);
      const field = keys[key];
      if (!field) throw new ApiError(400, `Invalid input error: no support for filtering on unrecognized field "${key}"`);
      filter.push({ key: field, op: String(v2 ? p.operation : p.op), value: String(p.string_value ?? p.stringValue ?? '') });
    }
  }
  return { filter, sortKey, desc, offset: 0, size };
}

function page<T extends Item>(all: T[], o: ListOptions): { items: T[]; next?: string; total: number } {
  const hits = all
    .filter((x) =>
      o.filter.every((p) => {
        const v = x[p.key] ?? '';
        if (p.op === 'EQUALS') return v === p.value;
        if (p.op === 'NOT_EQUALS') return v !== p.value;
        if (p.op === 'IS_SUBSTRING') return v.includes(p.value);
        throw new ApiError(400, `Invalid input error: invalid operation ${p.op}`);
      }),
    )
    .sort((a, b) => (a[o.sortKey] ?? '').localeCompare(b[o.sortKey] ?? '') * (o.desc ? -1 : 1));
  const items = hits.slice(o.offset, o.offset + o.size);
  const more = o.offset + o.size < hits.length;
  return { items, total: hits.length, ...(more ? { next: Buffer.from(JSON.stringify({ ...o, offset: o.offset + o.size })).toString('base64') } : {}) };
}

/** protojson with EmitUnpopulated false: empty strings and lists are left out. */
function compact(o: Json): Json {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== '' && !(Array.isArray(v) && v.length === 0)));
}

function typeOk(t: ParamType, v: unknown): boolean {
  switch (t) {
    case 'STRING':
      return typeof v === 'string';
    case 'NUMBER_INTEGER':
    case 'NUMBER_DOUBLE':
      return typeof v === 'number';
    case 'BOOLEAN':
      return typeof v === 'boolean';
    case 'LIST':
      return Array.isArray(v);
    case 'STRUCT':
      return typeof v === 'object' && v !== null && !Array.isArray(v);
  }
}

const RUN_FIELDS_V2 = new Set(['experiment_id', 'run_id', 'display_name', 'storage_state', 'description', 'pipeline_version_id', 'pipeline_spec', 'pipeline_version_reference', 'runtime_config', 'service_account', 'created_at', 'scheduled_at', 'finished_at', 'state', 'error', 'run_details', 'recurring_run_id', 'state_history']);
const RUN_FIELDS_V1 = new Set(['id', 'name', 'storage_state', 'description', 'pipeline_spec', 'resource_references', 'service_account', 'created_at', 'scheduled_at', 'finished_at', 'status', 'error', 'metrics']);

export async function startFakeKfpApi(opts: { tokens?: string[] } = {}): Promise<FakeKfpApi> {
  const pipelines: Pipeline[] = [];
  const versions: Version[] = [];
  const experiments: Experiment[] = [];
  const runs: FakeRun[] = [];
  const authorizations: string[] = [];
  const requests: string[] = [];
  let tokens = opts.tokens;
  let hang = 0;
  let filtersIgnored = false;
  let fail: { n: number; status: number } = { n: 0, status: 500 };
  const hanging = new Set<ServerResponse>();
  let clock = Date.UTC(2026, 0, 1);
  const stamp = () => new Date((clock += 1000)).toISOString();

  const v2Pipeline = (p: Pipeline): Json => compact({ pipeline_id: p.id, display_name: p.displayName, name: p.name, namespace: p.namespace, created_at: p.createdAt });
  const v1Pipeline = (p: Pipeline): Json => {
    const newest = versions.filter((v) => v.pipelineId === p.id).sort((a, b) => b.createdAt.localeCompare(a.createdAt))[0];
    return compact({ id: p.id, name: p.displayName, created_at: p.createdAt, default_version: newest ? { id: newest.id, name: newest.displayName } : undefined });
  };
  const v2Version = (v: Version): Json => compact({ pipeline_id: v.pipelineId, pipeline_version_id: v.id, display_name: v.displayName, created_at: v.createdAt });
  const v1Version = (v: Version): Json => compact({ id: v.id, name: v.displayName, created_at: v.createdAt, resource_references: [{ key: { type: 'PIPELINE', id: v.pipelineId }, relationship: 'OWNER' }] });
  const v2Experiment = (e: Experiment): Json => compact({ experiment_id: e.id, display_name: e.displayName, namespace: e.namespace, created_at: e.createdAt });
  const v1Experiment = (e: Experiment): Json => compact({ id: e.id, name: e.displayName, created_at: e.createdAt });
  const v2Run = (r: FakeRun): Json =>
    compact({
      run_id: r.id,
      display_name: r.displayName,
      description: r.description,
      experiment_id: r.experimentId,
      pipeline_version_reference: { pipeline_id: r.pipelineId, pipeline_version_id: r.versionId },
      runtime_config: Object.keys(r.parameters).length > 0 ? { parameters: r.parameters } : undefined,
      service_account: r.serviceAccount,
      created_at: r.createdAt,
      state: 'PENDING',
    });
  const v1Run = (r: FakeRun): Json =>
    compact({
      id: r.id,
      name: r.displayName,
      description: r.description,
      pipeline_spec: compact({ pipeline_id: r.pipelineId, parameters: Object.entries(r.parameters).map(([name, value]) => ({ name, value: String(value) })) }),
      resource_references: [
        ...(r.experimentId ? [{ key: { type: 'EXPERIMENT', id: r.experimentId }, relationship: 'OWNER' }] : []),
        { key: { type: 'PIPELINE_VERSION', id: r.versionId }, relationship: 'CREATOR' },
      ],
      service_account: r.serviceAccount,
      created_at: r.createdAt,
      status: 'Pending',
    });

  const items = {
    pipeline: (p: Pipeline): Item => ({ pipeline_id: p.id, id: p.id, display_name: p.displayName, name: p.name, namespace: p.namespace, created_at: p.createdAt }),
    version: (v: Version): Item => ({ pipeline_version_id: v.id, id: v.id, display_name: v.displayName, name: v.displayName, created_at: v.createdAt }),
    experiment: (e: Experiment): Item => ({ experiment_id: e.id, id: e.id, display_name: e.displayName, name: e.displayName, namespace: e.namespace, created_at: e.createdAt }),
    run: (r: FakeRun): Item => ({ run_id: r.id, id: r.id, display_name: r.displayName, name: r.displayName, description: r.description, experiment_id: r.experimentId, namespace: r.namespace, created_at: r.createdAt }),
  };
  const KEYS_V2 = {
    pipeline: { pipeline_id: 'pipeline_id', display_name: 'display_name', name: 'name', created_at: 'created_at', description: 'description', namespace: 'namespace' },
    version: { pipeline_version_id: 'pipeline_version_id', display_name: 'display_name', name: 'name', created_at: 'created_at', status: 'status', description: 'description' },
    experiment: { experiment_id: 'experiment_id', display_name: 'display_name', created_at: 'created_at', description: 'description', namespace: 'namespace' },
    run: { run_id: 'run_id', display_name: 'display_name', created_at: 'created_at', description: 'description', namespace: 'namespace', experiment_id: 'experiment_id', state: 'state' },
  };
  const KEYS_V1 = {
    pipeline: { id: 'id', name: 'display_name', created_at: 'created_at', description: 'description' },
    version: { id: 'id', name: 'display_name', created_at: 'created_at' },
    experiment: { id: 'id', name: 'display_name', created_at: 'created_at', description: 'description' },
    run: { id: 'id', name: 'display_name', created_at: 'created_at', description: 'description' },
  };

  function listed<T>(kind: keyof typeof items, all: T[], toItem: (x: T) => Item, render: (x: T) => Json, field: string, q: URLSearchParams, v2: boolean): Json {
    const keys = (v2 ? KEYS_V2 : KEYS_V1)[kind] as Record<string, string>;
    const byItem = new Map(all.map((x) => [toItem(x), x]));
    const o = listOptions(q, v2, keys, v2 ? `${kind === 'version' ? 'pipeline_version' : kind}_id` : 'id');
    if (filtersIgnored) o.filter = [];
    const r = page([...byItem.keys()], o);
    return compact({ [field]: r.items.map((i) => render(byItem.get(i) as T)), total_size: r.total || undefined, next_page_token: r.next });
  }

  function find<T extends { id: string }>(all: T[], id: string, what: string): T {
    const x = all.find((y) => y.id === id);
    if (!x) throw new ApiError(404, `${what} ${id} not found`);
    return x;
  }

  function createV2(body: Json): FakeRun {
    const unknown = Object.keys(body).filter((k) => !RUN_FIELDS_V2.has(k));
    if (unknown.length > 0) throw new ApiError(400, `proto: (line 1:2): unknown field "${unknown[0]}"`);
    const name = typeof body.display_name === 'string' ? body.display_name : '';
    if (name === '') throw new ApiError(400, 'Invalid input error: The run name is empty. Please specify a valid name');
    const ref = (body.pipeline_version_reference ?? {}) as Json;
    const pipeline = find(pipelines, String(ref.pipeline_id ?? ''), 'Pipeline');
    const version = find(versions, String(ref.pipeline_version_id ?? ''), 'PipelineVersion');
    const params = ((body.runtime_config ?? {}) as Json).parameters as Json | undefined;
    checkParams(version, params ?? {}, true);
    const experimentId = typeof body.experiment_id === 'string' ? find(experiments, body.experiment_id, 'Experiment').id : undefined;
    return addRunRecord({ displayName: name, description: String(body.description ?? ''), experimentId, pipelineId: pipeline.id, versionId: version.id, parameters: params ?? {}, serviceAccount: body.service_account as string | undefined, apiVersion: 'v2beta1' });
  }

  function createV1(body: Json): FakeRun {
    const unknown = Object.keys(body).filter((k) => !RUN_FIELDS_V1.has(k));
    if (unknown.length > 0) throw new ApiError(400, `unknown field "${unknown[0]}" in api.Run`);
    const name = typeof body.name === 'string' ? body.name : '';
    if (name === '') throw new ApiError(400, 'Invalid input error: The run name is empty. Please specify a valid name');
    const refs = Array.isArray(body.resource_references) ? (body.resource_references as Json[]) : [];
    const refOf = (type: string) => refs.map((r) => (r.key ?? {}) as Json).find((k) => k.type === type)?.id as string | undefined;
    const version = find(versions, refOf('PIPELINE_VERSION') ?? '', 'PipelineVersion');
    const experimentId = refOf('EXPERIMENT');
    if (experimentId) find(experiments, experimentId, 'Experiment');
    const pairs = Array.isArray(((body.pipeline_spec ?? {}) as Json).parameters) ? ((body.pipeline_spec as Json).parameters as Json[]) : [];
    const params: Json = {};
    for (const p of pairs) {
      if (typeof p.value !== 'string') throw new ApiError(400, `Invalid input error: parameter ${String(p.name)} must be a string in v1beta1`);
      params[String(p.name)] = p.value;
    }
    checkParams(version, params, false);
    return addRunRecord({ displayName: name, description: String(body.description ?? ''), experimentId, pipelineId: version.pipelineId, versionId: version.id, parameters: params, serviceAccount: body.service_account as string | undefined, apiVersion: 'v1beta1' });
  }

  function checkParams(version: Version, params: Json, typed: boolean): void {
    const extra = Object.keys(params).filter((k) => !(k in version.params));
    if (extra.length > 0) throw new ApiError(400, `Invalid input error: parameter(s) provided are not required by pipeline: ${extra.join(', ')}`);
    if (!typed) return;
    for (const [k, v] of Object.entries(params)) {
      const t = version.params[k] as ParamType;
      if (!typeOk(t, v)) throw new ApiError(400, `Invalid input error: input parameter ${k} requires type ${t}, but got ${JSON.stringify(v)}`);
    }
  }

  function addRunRecord(r: Omit<FakeRun, 'id' | 'createdAt' | 'namespace'>): FakeRun {
    const experiment = r.experimentId ? experiments.find((e) => e.id === r.experimentId) : undefined;
    const run: FakeRun = { ...r, id: randomUUID(), createdAt: stamp(), ...(experiment?.namespace ? { namespace: experiment.namespace } : {}) };
    runs.push(run);
    return run;
  }

  function route(method: string, path: string, q: URLSearchParams, body: Json): Json {
    const m = /^\/apis\/(v2beta1|v1beta1)(\/.*)$/.exec(path);
    if (!m) throw new ApiError(404, `Not Found: ${path}`);
    const v2 = m[1] === 'v2beta1';
    const rest = m[2] as string;
    const ns = v2 ? q.get('namespace') ?? undefined : q.get('resource_reference_key.type') === 'NAMESPACE' ? q.get('resource_reference_key.id') ?? undefined : undefined;
    const inNs = <T extends { namespace?: string }>(xs: T[]) => (ns ? xs.filter((x) => x.namespace === ns) : xs);
    let seg: RegExpExecArray | null;
    if (method === 'POST' && rest === '/runs') return v2 ? v2Run(createV2(body)) : { run: v1Run(createV1(body)), pipeline_runtime: {} };
    if (method !== 'GET') throw new ApiError(404, `Not Found: ${method} ${path}`);
    if (rest === '/pipelines') return listed('pipeline', inNs(pipelines), items.pipeline, v2 ? v2Pipeline : v1Pipeline, 'pipelines', q, v2);
    if (v2 && (seg = /^\/pipelines\/names\/([^/]+)$/.exec(rest))) {
      const name = decodeURIComponent(seg[1] as string);
      const p = pipelines.find((x) => x.name === name && (x.namespace ?? '') === (ns ?? ''));
      if (!p) throw new ApiError(404, `Pipeline with name ${name} not found`);
      return v2Pipeline(p);
    }
    if ((seg = /^\/pipelines\/([^/]+)$/.exec(rest))) {
      const p = find(pipelines, seg[1] as string, 'Pipeline');
      return v2 ? v2Pipeline(p) : v1Pipeline(p);
    }
    if (v2 && (seg = /^\/pipelines\/([^/]+)\/versions$/.exec(rest))) {
      const pid = find(pipelines, seg[1] as string, 'Pipeline').id;
      return listed('version', versions.filter((v) => v.pipelineId === pid), items.version, v2Version, 'pipeline_versions', q, v2);
    }
    if (v2 && (seg = /^\/pipelines\/([^/]+)\/versions\/([^/]+)$/.exec(rest))) return v2Version(find(versions, seg[2] as string, 'PipelineVersion'));
    if (!v2 && rest === '/pipeline_versions') {
      if (q.get('resource_key.type') !== 'PIPELINE') throw new ApiError(400, 'Invalid input error: ResourceKey must be set to PIPELINE');
      const pid = find(pipelines, q.get('resource_key.id') ?? '', 'Pipeline').id;
      return listed('version', versions.filter((v) => v.pipelineId === pid), items.version, v1Version, 'versions', q, v2);
    }
    if (!v2 && (seg = /^\/pipeline_versions\/([^/]+)$/.exec(rest))) return v1Version(find(versions, seg[1] as string, 'PipelineVersion'));
    if (rest === '/experiments') return listed('experiment', inNs(experiments), items.experiment, v2 ? v2Experiment : v1Experiment, 'experiments', q, v2);
    if ((seg = /^\/experiments\/([^/]+)$/.exec(rest))) {
      const e = find(experiments, seg[1] as string, 'Experiment');
      return v2 ? v2Experiment(e) : v1Experiment(e);
    }
    if (rest === '/runs') {
      const exp = v2 ? q.get('experiment_id') : q.get('resource_reference_key.type') === 'EXPERIMENT' ? q.get('resource_reference_key.id') : null;
      const scoped = runs.filter((r) => (!exp || r.experimentId === exp) && (!ns || r.namespace === ns));
      return listed('run', scoped, items.run, v2 ? v2Run : v1Run, 'runs', q, v2);
    }
    if ((seg = /^\/runs\/([^/]+)$/.exec(rest))) {
      const r = find(runs, decodeURIComponent(seg[1] as string), 'Run');
      return v2 ? v2Run(r) : { run: v1Run(r), pipeline_runtime: {} };
    }
    throw new ApiError(404, `Not Found: ${path}`);
  }

  function send(res: ServerResponse, status: number, body: Json): void {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? '/', 'http://fake');
    requests.push(`${req.method} ${url.pathname}`);
    const auth = req.headers.authorization;
    if (auth !== undefined) authorizations.push(auth);
    if (tokens && !tokens.some((t) => auth === `Bearer ${t}`)) {
      send(res, 401, { code: 16, message: 'Unauthenticated: Request header error: there is no user identity header.' });
      return;
    }
    if (fail.n > 0) {
      fail.n--;
      send(res, fail.status, { code: GRPC_CODE[fail.status] ?? 2, message: `injected failure ${fail.status}` });
      return;
    }
    try {
      let body: Json = {};
      if (chunks.length > 0) body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json;
      const out = route(req.method ?? 'GET', url.pathname, url.searchParams, body);
      if (req.method === 'POST' && hang > 0) {
        // The run is made; the answer never comes (the client times out).
        hang--;
        hanging.add(res);
        return;
      }
      send(res, 200, out);
    } catch (err) {
      const status = err instanceof ApiError ? err.status : 400;
      send(res, status, { code: GRPC_CODE[status] ?? 2, message: (err as Error).message, details: [] });
    }
  }

  const server: Server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  function addVersion(pipelineId: string, v: { displayName: string; params?: Record<string, ParamType> }): string {
    const version: Version = { id: randomUUID(), pipelineId, displayName: v.displayName, createdAt: stamp(), params: v.params ?? {} };
    versions.push(version);
    return version.id;
  }

  return {
    url: `http://127.0.0.1:${port}`,
    addPipeline(p) {
      const pipeline: Pipeline = { id: randomUUID(), displayName: p.displayName, name: p.name ?? p.displayName, createdAt: stamp(), ...(p.namespace ? { namespace: p.namespace } : {}) };
      pipelines.push(pipeline);
      const versionId = addVersion(pipeline.id, { displayName: `${p.displayName}-v1`, ...(p.params ? { params: p.params } : {}) });
      return { pipelineId: pipeline.id, versionId };
    },
    addVersion,
    addExperiment(displayName, namespace) {
      const e: Experiment = { id: randomUUID(), displayName, createdAt: stamp(), ...(namespace ? { namespace } : {}) };
      experiments.push(e);
      return e.id;
    },
    addRun(r) {
      return addRunRecord({ displayName: r.displayName ?? 'upstream', description: r.description ?? '', pipelineId: r.pipelineId, versionId: r.versionId, parameters: {}, apiVersion: 'v2beta1', ...(r.experimentId ? { experimentId: r.experimentId } : {}) }).id;
    },
    runs: () => [...runs],
    authorizations,
    requests,
    setTokens: (t) => void (tokens = t),
    hangNextCreates: (n) => void (hang = n),
    failNext: (n, status) => void (fail = { n, status }),
    ignoreFilters: (on) => void (filtersIgnored = on),
    async close() {
      for (const r of hanging) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
