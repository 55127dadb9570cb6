import { createHash } from 'node:crypto';
import type { SimulatedRun } from './simulate-run.js';

/**
 * A played run's `status` as Argo's controller writes it (argo-kfp.md §4.5): `status.nodes` keyed by
 * node id, each with its name, display name, type, template, phase, enclosing DAG (`boundaryID`),
 * children and times; `phase`, `startedAt`, `finishedAt` for the run. The demo writes these into its
 * Workflow API stand-in for the callback's status watcher to read. Pure.
 */

export type RunStage = 'running' | 'finished';

/** Argo's node id shape: the workflow name for the root node, else `<wf>-<number>` derived from the name. */
function nodeId(workflowName: string, nodeName: string): string {
  if (nodeName === workflowName) return workflowName;
  return `${workflowName}-${createHash('sha256').update(nodeName).digest().readUInt32BE(0)}`;
}

const at = (start: Date, seconds: number): string => new Date(start.getTime() + seconds * 1000).toISOString().replace(/\.\d+Z$/, 'Z');

/** The status at a stage: `running` (the entry node just started, the running hook fired) or `finished` (every node, the run's end). */
export function argoStatus(run: SimulatedRun, workflowName: string, stage: RunStage, startedAt: Date): Record<string, unknown> {
  const records = stage === 'finished' ? run.records : run.records.filter((r) => r.name === workflowName || r.name.startsWith(`${workflowName}.hooks.`));
  const nodes: Record<string, unknown> = {};
  for (const r of records) {
    const id = nodeId(workflowName, r.name);
    const running = stage === 'running' && r.name === workflowName;
    const children = records.filter((c) => c.boundary === r.name).map((c) => nodeId(workflowName, c.name));
    nodes[id] = {
      id,
      name: r.name,
      displayName: r.displayName,
      type: r.type,
      templateName: r.templateName,
      phase: running ? 'Running' : r.phase,
      ...(r.boundary ? { boundaryID: nodeId(workflowName, r.boundary) } : {}),
      ...(children.length > 0 ? { children } : {}),
      startedAt: at(startedAt, r.startedAt),
      finishedAt: running ? null : at(startedAt, r.finishedAt),
      ...(r.phase === 'Failed' ? { message: 'Error (exit code 1)' } : {}),
    };
  }
  const end = Math.max(0, ...run.records.map((r) => r.finishedAt));
  return {
    phase: stage === 'running' ? 'Running' : run.phase,
    startedAt: at(startedAt, 0),
    finishedAt: stage === 'running' ? null : at(startedAt, end),
    nodes,
  };
}
