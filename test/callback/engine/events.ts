import { createHash } from 'node:crypto';
import type { EventType, KfpEvent } from '../../../callback/types.js';

/** A well-formed KfpEvent for store and worker tests; the id follows the documented formula. */
export function makeEvent(over: Partial<KfpEvent> & { seq?: number } = {}): KfpEvent {
  const { seq = 0, ...rest } = over;
  const type: EventType = rest.EventType ?? 'WorkflowNodeSucceeded';
  const run = rest.KfpRunId ?? `run-${seq}`;
  const node = rest.ArgoNodeName ?? `wf-${seq}.step-${seq}`;
  const id = `evt_${createHash('sha256').update(`${run}\n${node}\n${type}\n0`).digest('hex').slice(0, 32)}`;
  return {
    KfpRunId: run,
    WorkflowName: `wf-${seq}`,
    NodeName: `step-${seq}`,
    EventType: type,
    Message: `Succeeded node ${node}`,
    EventId: id,
    Namespace: 'kubeflow-user',
    PipelineName: 'hello',
    RunName: `run ${seq}`,
    Phase: 'Succeeded',
    Time: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
    ArgoNodeName: node,
    WorkflowUid: `uid-${seq}`,
    Source: 'hook',
    RecurringRunName: '',
    RunUrl: '',
    ...rest,
  };
}
