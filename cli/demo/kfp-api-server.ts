import { kfpFlavour } from '../../common/kfp/kfp-steps.js';
import type { Workflow } from '../../common/kfp/workflow-types.js';

/**
 * What the KFP API server adds to a compiled Workflow just before it creates it (argo-kfp.md §4.3),
 * so that a compiler's output can be admitted the way a real KFP run is. Pure; returns a copy.
 */
export interface KfpRunIdentity {
  runId: string;
  runName: string;
  namespace: string;
}

type Obj = Record<string, unknown>;

function obj(parent: Obj, key: string): Obj {
  const v = parent[key];
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Obj;
  const fresh: Obj = {};
  parent[key] = fresh;
  return fresh;
}

export function asCreatedByKfp(compiled: Workflow, run: KfpRunIdentity): Workflow {
  // ReplaceUID: a strings.ReplaceAll over the serialized spec.
  const wf = JSON.parse(JSON.stringify(compiled).replaceAll('{{workflow.uid}}', run.runId)) as Obj;
  const metadata = obj(wf, 'metadata');
  metadata.namespace = run.namespace;
  obj(metadata, 'labels')['pipeline/runid'] = run.runId;
  obj(metadata, 'annotations')['pipelines.kubeflow.org/run_name'] = run.runName;
  const spec = obj(wf, 'spec');
  obj(obj(spec, 'podMetadata'), 'labels')['pipeline/runid'] = run.runId;
  if (kfpFlavour(wf as Workflow) === 'v1') {
    const templates = Array.isArray(spec.templates) ? (spec.templates as Obj[]) : [];
    for (const t of templates) {
      const meta = obj(t, 'metadata');
      obj(meta, 'labels')['pipelines.kubeflow.org/cache_enabled'] = 'true';
      const annotations = obj(meta, 'annotations');
      annotations['sidecar.istio.io/inject'] ??= 'false';
      const outputs = t.outputs as Obj | undefined;
      const artifacts = Array.isArray(outputs?.artifacts) ? (outputs.artifacts as Obj[]) : [];
      for (const a of artifacts) if (a.name === 'mlpipeline-ui-metadata' || a.name === 'mlpipeline-metrics') a.optional = true;
    }
  }
  return wf as Workflow;
}
