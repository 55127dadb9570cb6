import { readFileSync } from 'node:fs';
import { load } from 'js-yaml';
import { FIXTURES_DIR } from '../../helpers/fixtures.js';

/**
 * Real-shaped Workflows for the watcher's tests: a compiled KFP fixture from /work/shared/fixtures,
 * plus what the KFP API server adds before create (argo-kfp.md §4.3), what the kube-apiserver adds
 * (name, uid, namespace, creationTimestamp), and a `status` written the way Argo's controller writes
 * it (node ids from the node name's FNV-1a hash, boundaryID, children, display names, phases).
 */

export const FIXTURES = FIXTURES_DIR;

export type Wf = Record<string, unknown> & {
  metadata: Record<string, unknown> & { name: string; labels: Record<string, string>; annotations: Record<string, string> };
  spec: Record<string, unknown>;
  status?: Record<string, unknown>;
};

export interface AdmitOptions {
  name: string;
  namespace?: string;
  runId: string;
  runName?: string;
  uid?: string;
}

/** A compiled fixture as it exists in the cluster once KFP submitted it. */
export function admittedWorkflow(fixture: string, o: AdmitOptions): Wf {
  const raw = load(readFileSync(`${FIXTURES}/${fixture}`, 'utf8')) as Record<string, unknown>;
  // KFP's ReplaceUID: the run id stands in for {{workflow.uid}} everywhere in the spec.
  const wf = JSON.parse(JSON.stringify(raw).replaceAll('{{workflow.uid}}', o.runId)) as Wf;
  const meta = (wf.metadata ?? {}) as Wf['metadata'];
  wf.metadata = meta;
  meta.name = o.name;
  meta.namespace = o.namespace ?? 'kubeflow';
  meta.uid = o.uid ?? `0f4c${o.runId.slice(4)}`;
  meta.creationTimestamp = '2025-06-03T10:00:00Z';
  meta.labels = { ...(meta.labels ?? {}), 'pipeline/runid': o.runId };
  meta.annotations = { ...(meta.annotations ?? {}), 'pipelines.kubeflow.org/run_name': o.runName ?? 'nightly run' };
  const spec = wf.spec;
  const podMetadata = (spec.podMetadata ?? {}) as Record<string, Record<string, string>>;
  podMetadata.labels = { ...(podMetadata.labels ?? {}), 'pipeline/runid': o.runId };
  spec.podMetadata = podMetadata;
  return wf;
}

/** Argo's node id: the workflow name for the root node, else `<wf>-<fnv32a(node name)>`. */
export function argoNodeId(workflowName: string, nodeName: string): string {
  if (nodeName === workflowName) return workflowName;
  let h = 0x811c9dc5;
  for (const b of Buffer.from(nodeName, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `${workflowName}-${h}`;
}

export interface NodeSpec {
  /** Full Argo node name, e.g. `<wf>.root.hello-world`. */
  name: string;
  type: 'DAG' | 'Pod' | 'Retry' | 'TaskGroup' | 'Skipped' | 'Steps';
  templateName: string;
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Error' | 'Skipped' | 'Omitted';
  /** Defaults to the last dot-separated part of the name (the task name). */
  displayName?: string;
  /** Name of the enclosing DAG node. */
  boundary?: string;
  children?: string[];
  message?: string;
  startedAt?: string;
  finishedAt?: string;
}

function displayNameOf(name: string): string {
  // The last task segment; dots inside a loop suffix `(0:{"a":1.5})` do not split.
  const m = /\.([^.()]+(\([^)]*\))?)$/.exec(name);
  return m?.[1] ?? name;
}

export interface StatusSpec {
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Error';
  startedAt: string;
  finishedAt?: string;
  message?: string;
  nodes: NodeSpec[];
}

/** The Workflow with `status` as Argo's controller would have written it. */
export function withStatus(wf: Wf, s: StatusSpec): Wf {
  const name = wf.metadata.name;
  const nodes: Record<string, unknown> = {};
  for (const n of s.nodes) {
    const id = argoNodeId(name, n.name);
    const finished = n.phase !== 'Running' && n.phase !== 'Pending';
    nodes[id] = {
      id,
      name: n.name,
      displayName: n.displayName ?? (n.name === name ? name : displayNameOf(n.name)),
      type: n.type,
      templateName: n.templateName,
      templateScope: `local/${name}`,
      phase: n.phase,
      ...(n.boundary ? { boundaryID: argoNodeId(name, n.boundary) } : {}),
      ...(n.message ? { message: n.message } : {}),
      startedAt: n.startedAt ?? s.startedAt,
      ...(finished ? { finishedAt: n.finishedAt ?? s.finishedAt ?? s.startedAt } : { finishedAt: null }),
      ...(n.children && n.children.length > 0 ? { children: n.children.map((c) => argoNodeId(name, c)) } : {}),
      ...(n.type === 'Pod' ? { hostNodeName: 'gke-pool-1-a1b2', progress: finished ? '1/1' : '0/1' } : {}),
    };
  }
  const out = structuredClone(wf);
  out.metadata.labels = {
    ...out.metadata.labels,
    'workflows.argoproj.io/phase': s.phase,
    ...(s.finishedAt ? { 'workflows.argoproj.io/completed': 'true' } : {}),
  };
  out.status = {
    phase: s.phase,
    startedAt: s.startedAt,
    finishedAt: s.finishedAt ?? null,
    ...(s.message ? { message: s.message } : {}),
    progress: `${s.nodes.filter((n) => n.type === 'Pod' && n.phase === 'Succeeded').length}/${s.nodes.filter((n) => n.type === 'Pod').length}`,
    nodes,
  };
  return out;
}
