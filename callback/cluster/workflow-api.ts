import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { ListFn } from './list-watch.js';

/** Where Argo Workflows live in the Kubernetes API. */
export const WORKFLOW_GROUP = 'argoproj.io';
export const WORKFLOW_VERSION = 'v1alpha1';
export const WORKFLOW_PLURAL = 'workflows';

/** The collection path: in one namespace, or across all of them. */
export function workflowsPath(namespace?: string): string {
  const base = `/apis/${WORKFLOW_GROUP}/${WORKFLOW_VERSION}`;
  return namespace ? `${base}/namespaces/${encodeURIComponent(namespace)}/${WORKFLOW_PLURAL}` : `${base}/${WORKFLOW_PLURAL}`;
}

/** Lists the same collection as workflowsPath(namespace), one page per call. */
export function workflowLister(kc: KubeConfig, namespace: string | undefined, labelSelector: string): ListFn {
  const api = kc.makeApiClient(CustomObjectsApi);
  const base = { group: WORKFLOW_GROUP, version: WORKFLOW_VERSION, plural: WORKFLOW_PLURAL, labelSelector };
  return ({ limit, continueToken }) =>
    namespace
      ? api.listNamespacedCustomObject({ ...base, namespace, limit, _continue: continueToken })
      : api.listClusterCustomObject({ ...base, limit, _continue: continueToken });
}
