import { Agent, request } from 'undici';
import { errorMessage } from '../../common/error-message.js';
import type { UpstreamRun } from './origin.js';
import { createRunBodyV1, createRunBodyV2, filterValue, isKfpId, kfpErrorMessage, withQuery, type CreateRunInput, type Predicate } from './request.js';
import type { KfpApiVersion } from './target.js';

/**
 * A small KFP REST client: the calls a trigger makes, for v2beta1 and v1beta1. Each call is bounded by
 * the subscriber's timeout (headers and body) and by the worker's shutdown signal. Failures are
 * KfpApiError: `status` when KFP answered, none for a transport error or a timeout.
 */

export class KfpApiError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'KfpApiError';
  }
}

export interface KfpClientOptions {
  baseUrl: string;
  apiVersion: KfpApiVersion;
  /** Sent on every call (Authorization among them); never logged. */
  headers: Record<string, string>;
  timeoutMs: number;
  signal: AbortSignal;
  dispatcher: Agent;
}

export interface KfpClient {
  findPipeline(nameOrId: string, namespace?: string): Promise<string>;
  /** The version's id: by name or id, or the newest when none is given. */
  findVersion(pipelineId: string, nameOrId?: string): Promise<string>;
  findExperiment(nameOrId: string, namespace?: string): Promise<string>;
  /** A run whose description holds `marker`, in this experiment (or namespace). */
  findRunWith(marker: string, scope: { experimentId?: string; namespace?: string }): Promise<string | undefined>;
  /** undefined when KFP does not know the run (or may not show it). */
  getRun(runId: string): Promise<UpstreamRun | undefined>;
  createRun(input: CreateRunInput): Promise<string>;
}

type Json = Record<string, unknown>;
const PAGE_SIZE = 100;
/** Bound on a page scan: a filter that KFP ignored must not turn one delivery into a crawl. */
const MAX_PAGES = 50;

function rec(v: unknown): Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {};
}
function list(v: unknown): Json[] {
  return Array.isArray(v) ? v.map(rec) : [];
}
function text(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function kfpClient(o: KfpClientOptions): KfpClient {
  const base = o.baseUrl.replace(/\/+$/, '');
  const v2 = o.apiVersion === 'v2beta1';
  const api = `/apis/${o.apiVersion}`;

  async function call(method: 'GET' | 'POST', path: string, body?: Json): Promise<Json> {
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(`${base}${path}`, {
        method,
        headers: { accept: 'application/json', ...o.headers, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
        signal: o.signal,
        headersTimeout: o.timeoutMs,
        bodyTimeout: o.timeoutMs,
        dispatcher: o.dispatcher,
      });
    } catch (err) {
      throw new KfpApiError(`${method} ${path.split('?')[0]}: ${errorMessage(err)}`);
    }
    let parsed: unknown;
    try {
      const raw = await res.body.text();
      parsed = raw === '' ? {} : JSON.parse(raw);
    } catch (err) {
      if (res.statusCode < 300) throw new KfpApiError(`${method} ${path.split('?')[0]}: unreadable answer: ${errorMessage(err)}`, 502);
      parsed = {};
    }
    if (res.statusCode >= 300) {
      throw new KfpApiError(`KFP ${method} ${path.split('?')[0]}: ${kfpErrorMessage(parsed) ?? `HTTP ${res.statusCode}`}`, res.statusCode);
    }
    return rec(parsed);
  }

  /** The first item of a listing that passes `keep`, following next_page_token (bounded). */
  async function scan(path: string, query: Record<string, string | number | undefined>, items: string, keep: (x: Json) => boolean): Promise<Json | undefined> {
    let token: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      // A page token carries the first page's filter and sort; KFP takes them from it.
      const r = await call('GET', withQuery(path, token ? { ...query, page_token: token } : query));
      const hit = list(r[items]).find(keep);
      if (hit) return hit;
      token = text(r.next_page_token);
      if (!token) return undefined;
    }
    return undefined;
  }

  const idOf = (kind: 'pipeline' | 'pipeline_version' | 'experiment' | 'run', x: Json): string | undefined => text(v2 ? x[`${kind}_id`] : x.id);
  const nameOf = (x: Json): string | undefined => (v2 ? text(x.display_name) ?? text(x.name) : text(x.name));
  const nsQuery = (ns?: string) =>
    v2 ? { namespace: ns } : ns ? { 'resource_reference_key.type': 'NAMESPACE', 'resource_reference_key.id': ns } : {};
  const byName = (name: string): Predicate[] => [{ key: v2 ? 'display_name' : 'name', op: 'EQUALS', value: name }];

  function notFound(what: string, nameOrId: string, where?: string): never {
    throw new KfpApiError(`${what} ${JSON.stringify(nameOrId)} not found in KFP${where ? ` (namespace ${where})` : ''}`, 404);
  }

  return {
    async findPipeline(nameOrId, namespace) {
      if (isKfpId(nameOrId)) {
        const r = await call('GET', `${api}/pipelines/${nameOrId}`);
        return idOf('pipeline', r) ?? notFound('pipeline', nameOrId);
      }
      const hit = await scan(`${api}/pipelines`, { ...nsQuery(namespace), filter: filterValue(o.apiVersion, byName(nameOrId)), page_size: PAGE_SIZE }, 'pipelines', (x) => nameOf(x) === nameOrId);
      const id = hit && idOf('pipeline', hit);
      if (id) return id;
      if (v2) {
        // 2.14+ keeps a pipeline's `name` apart from its display name; the names endpoint finds it by name.
        try {
          const r = await call('GET', withQuery(`${api}/pipelines/names/${encodeURIComponent(nameOrId)}`, { namespace }));
          const byNameId = idOf('pipeline', r);
          if (byNameId) return byNameId;
        } catch (err) {
          if (!(err instanceof KfpApiError) || err.status !== 404) throw err;
        }
      }
      return notFound('pipeline', nameOrId, namespace);
    },

    async findVersion(pipelineId, nameOrId) {
      const path = v2 ? `${api}/pipelines/${pipelineId}/versions` : `${api}/pipeline_versions`;
      const owner = v2 ? {} : { 'resource_key.type': 'PIPELINE', 'resource_key.id': pipelineId };
      if (nameOrId === undefined) {
        // Always resolved, never left to KFP: before 2.5 the version id is required.
        const r = await call('GET', withQuery(path, { ...owner, sort_by: 'created_at desc', page_size: 1 }));
        const newest = list(r[v2 ? 'pipeline_versions' : 'versions'])[0];
        return (newest && idOf('pipeline_version', newest)) ?? notFound('a version of pipeline', pipelineId);
      }
      if (isKfpId(nameOrId)) {
        const r = await call('GET', v2 ? `${path}/${nameOrId}` : `${api}/pipeline_versions/${nameOrId}`);
        return idOf('pipeline_version', r) ?? notFound('pipeline version', nameOrId);
      }
      const hit = await scan(path, { ...owner, filter: filterValue(o.apiVersion, byName(nameOrId)), page_size: PAGE_SIZE }, v2 ? 'pipeline_versions' : 'versions', (x) => nameOf(x) === nameOrId);
      return (hit && idOf('pipeline_version', hit)) ?? notFound('pipeline version', nameOrId);
    },

    async findExperiment(nameOrId, namespace) {
      if (isKfpId(nameOrId)) {
        const r = await call('GET', `${api}/experiments/${nameOrId}`);
        return idOf('experiment', r) ?? notFound('experiment', nameOrId);
      }
      const hit = await scan(`${api}/experiments`, { ...nsQuery(namespace), filter: filterValue(o.apiVersion, byName(nameOrId)), page_size: PAGE_SIZE }, 'experiments', (x) => nameOf(x) === nameOrId);
      return (hit && idOf('experiment', hit)) ?? notFound('experiment', nameOrId, namespace);
    },

    async findRunWith(marker, scope) {
      const where = scope.experimentId
        ? v2
          ? { experiment_id: scope.experimentId }
          : { 'resource_reference_key.type': 'EXPERIMENT', 'resource_reference_key.id': scope.experimentId }
        : nsQuery(scope.namespace);
      // The filter does the search; the description is checked again here, so a KFP that ignored
      // the filter costs pages, never a wrong match.
      const hit = await scan(
        `${api}/runs`,
        { ...where, filter: filterValue(o.apiVersion, [{ key: 'description', op: 'IS_SUBSTRING', value: marker }]), page_size: PAGE_SIZE },
        'runs',
        (x) => (text(x.description) ?? '').includes(marker),
      );
      return hit && idOf('run', hit);
    },

    async getRun(runId) {
      let r: Json;
      try {
        r = await call('GET', `${api}/runs/${encodeURIComponent(runId)}`);
      } catch (err) {
        // Not a KFP run (or not one we may read): it starts a chain of its own.
        if (err instanceof KfpApiError && (err.status === 404 || err.status === 403 || err.status === 400)) return undefined;
        throw err;
      }
      if (v2) {
        const pipelineId = text(rec(r.pipeline_version_reference).pipeline_id);
        return { runId, ...(pipelineId ? { pipelineId } : {}), ...(text(r.description) ? { description: text(r.description) } : {}) };
      }
      const run = rec(r.run);
      const spec = rec(run.pipeline_spec);
      const pipelineRef = list(run.resource_references).find((x) => rec(x.key).type === 'PIPELINE');
      const pipelineId = text(spec.pipeline_id) ?? text(rec(pipelineRef?.key).id);
      return { runId, ...(pipelineId ? { pipelineId } : {}), ...(text(run.description) ? { description: text(run.description) } : {}) };
    },

    async createRun(input) {
      const r = await call('POST', `${api}/runs`, v2 ? createRunBodyV2(input) : createRunBodyV1(input));
      const id = v2 ? text(r.run_id) : text(rec(r.run).id);
      if (!id) throw new KfpApiError('KFP created a run but its answer has no run id', 502);
      return id;
    },
  };
}
