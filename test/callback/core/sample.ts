import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildEvent, type EventFact } from '../../../callback/event-id.js';
import { runUrl } from '../../../callback/run-url.js';
import type { KfpEvent, WorkflowSnapshot } from '../../../callback/types.js';
import { pipelineNameOf } from '../../../common/kfp/kfp-meta.js';
import type { Workflow } from '../../../common/kfp/workflow-types.js';
import { parseDocuments } from '../../../common/yaml-docs.js';
import { FIXTURES_DIR } from '../../helpers/fixtures.js';

/** One KFP v1 run of fixtures/kfp-v1-compiler/basic.yaml (save-most-frequent), as admitted and run. */
export const RUN = '3f6a2c1e-6b1d-4a43-9a55-0d5c0c1f2b7e';
export const WF = 'save-most-frequent-x7k2p';
export const NS = 'kubeflow-user-example-com';
export const UID = '0b8f3c52-7a5e-4f1e-9d57-2f6d1e4c9a10';
/**
 * The pipeline's name as the injected hooks and the watcher report it: read from the fixture by the
 * code that reads it at admission ("Save Most Frequent", the compiler's name), never written here,
 * so the docs cannot show a name the events do not carry.
 */
export const PIPELINE = pipelineNameOf(parseDocuments(readFileSync(join(FIXTURES_DIR, 'kfp-v1-compiler/basic.yaml'), 'utf8'))[0] as Workflow);
export const RECEIVED_AT = new Date('2025-03-01T12:00:00.000Z');

/** The fields every hook call of this run carries (the container hook sends all of them). */
export const BASE_CALL = {
  v: '1',
  kfpRunId: RUN,
  namespace: NS,
  workflowName: WF,
  workflowUid: UID,
  pipelineName: PIPELINE,
  runName: 'nightly-word-count',
} as const;

/**
 * Event ids of this run, computed outside this code base:
 * python3 -c "import hashlib; print('evt_'+hashlib.sha256('\n'.join([run, node, type, attempt]).encode()).hexdigest()[:32])"
 * with attempt '0' unless named
 */
export const IDS = {
  running: 'evt_0326cf63c8b9b1cfeffc49ac0cbcd0ec',
  succeeded: 'evt_d78095b235ed46f3202a78407a64938f',
  failed: 'evt_109c63ecf051d75728f261f632371059',
  saveSucceeded: 'evt_52de8459192af50629401a39726dc4dc',
  saveFailed: 'evt_5d2d7ed1f3b8e4392bb33f02060bcbbd',
  userExitFailed: 'evt_7f60ad7a8a262b527ef7a38c626398e0',
  runningAttempt1: 'evt_bb238d1c4d87ba1e0840f187cf6e615b',
  /** The attempt is the failed node's finishedAt, 2025-03-01T11:58:00Z (callback/attempt.ts). */
  saveFailedAt1158: 'evt_9cdd15b391fd5c2585978c4cd470fd3f',
} as const;

export function snapshot(over: Partial<WorkflowSnapshot> = {}): WorkflowSnapshot {
  return { uid: UID, nodes: {}, annotations: {}, labels: {}, terminated: false, ...over };
}

/** One example per EventType, the run above: the facts behind docs/events.md and the golden deliveries. */
export const EXAMPLE_FACTS: readonly EventFact[] = (() => {
  const base = {
    kfpRunId: RUN,
    workflowName: WF,
    namespace: NS,
    pipelineName: PIPELINE,
    runName: 'nightly-word-count',
    workflowUid: UID,
    source: 'hook',
    argoNodeName: '',
    nodeDisplayName: '',
  } as const;
  return [
    { ...base, eventType: 'WorkflowRunning', phase: 'Running', time: '2025-03-01T11:50:02.000Z' },
    { ...base, eventType: 'WorkflowNodeSucceeded', argoNodeName: `${WF}.exit-handler-1.get-frequent`, nodeDisplayName: 'get-frequent', phase: 'Succeeded', time: '2025-03-01T11:52:10.000Z' },
    { ...base, eventType: 'WorkflowNodeFailed', argoNodeName: `${WF}.exit-handler-1.save`, nodeDisplayName: 'save', phase: 'Failed', message: 'save: Error (exit code 1)', time: '2025-03-01T11:58:00.000Z' },
    { ...base, eventType: 'WorkflowFailed', phase: 'Failed', message: 'save: Error (exit code 1)', time: '2025-03-01T11:58:31.000Z' },
    { ...base, eventType: 'WorkflowSucceeded', phase: 'Succeeded', time: '2025-03-01T12:00:00.000Z' },
  ];
})();

/** The KFP UI base of the examples (--kfp-ui-url), so every example event carries its RunUrl. */
export const EXAMPLE_KFP_UI = 'https://kubeflow.example.com/pipeline';

/** An example fact as subscribers get it: built, then linked to the run as ingest does with --kfp-ui-url. */
export function exampleEvent(fact: EventFact): KfpEvent {
  const e = buildEvent(fact);
  return { ...e, RunUrl: runUrl(EXAMPLE_KFP_UI, e.KfpRunId) };
}
