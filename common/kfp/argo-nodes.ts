import { isRecord } from './workflow-types.js';

/**
 * The parts of an Argo node status (`status.nodes[id]`) that kfp-notify reads, as plain strings ('' when
 * absent): both the status watcher (what happened to which step) and the failure summary (which step
 * failed, and why) walk the same tree, so they read it the same way.
 */
export interface ArgoNode {
  id: string;
  name: string;
  displayName: string;
  type: string;
  templateName: string;
  phase: string;
  message: string;
  boundaryID: string;
  children: string[];
  startedAt: string;
  finishedAt: string;
}

const text = (v: unknown): string => (typeof v === 'string' ? v : '');

export function toArgoNode(id: string, v: unknown): ArgoNode | undefined {
  if (!isRecord(v)) return undefined;
  const children = Array.isArray(v.children) ? v.children.filter((c): c is string => typeof c === 'string') : [];
  return {
    id: text(v.id) || id,
    name: text(v.name),
    displayName: text(v.displayName),
    type: text(v.type),
    templateName: text(v.templateName),
    phase: text(v.phase),
    message: text(v.message),
    boundaryID: text(v.boundaryID),
    children,
    startedAt: text(v.startedAt),
    finishedAt: text(v.finishedAt),
  };
}

/** `status.nodes` as a list, skipping entries that are not node objects. */
export function argoNodes(wf: unknown): ArgoNode[] {
  const status = isRecord(wf) && isRecord(wf.status) ? wf.status : {};
  const nodes = isRecord(status.nodes) ? status.nodes : {};
  return Object.entries(nodes).flatMap(([id, v]) => {
    const n = toArgoNode(id, v);
    return n ? [n] : [];
  });
}
