import { CloudEvent, HTTP, type Message } from 'cloudevents';
import type { EventType, KfpEvent } from '../types.js';
import type { Delivery } from './delivery.js';

/**
 * CloudEvents 1.0 over HTTP, structured or binary mode. The `cloudevents` package serializes only;
 * sending (timeouts, retries) is ours (sender.ts).
 *
 * Types: run ends use kfp-operator's `org.kubeflow.pipelines.run-completion` with data its consumers
 * read (status succeeded|failed, pipelineName, runName, runId, artifacts...); kfp-operator has no
 * running or per-step events, so those get sibling names.
 */

export const CLOUDEVENT_TYPES: Readonly<Record<EventType, string>> = {
  WorkflowRunning: 'org.kubeflow.pipelines.run-running',
  WorkflowSucceeded: 'org.kubeflow.pipelines.run-completion',
  WorkflowFailed: 'org.kubeflow.pipelines.run-completion',
  WorkflowNodeSucceeded: 'org.kubeflow.pipelines.node-completion',
  WorkflowNodeFailed: 'org.kubeflow.pipelines.node-completion',
};

/** Who produced the event: the Workflow, named as the Kubernetes API names it. */
export function cloudEventSource(event: KfpEvent): string {
  return `/apis/argoproj.io/v1alpha1/namespaces/${event.Namespace}/workflows/${event.WorkflowName}`;
}

/** kfp-operator's NamespacedName text: `<namespace>/<name>`, '' when the name is unknown. */
function namespacedName(namespace: string, name: string): string {
  return name === '' ? '' : `${namespace}/${name}`;
}

function status(t: EventType): 'running' | 'succeeded' | 'failed' {
  if (t === 'WorkflowRunning') return 'running';
  return t === 'WorkflowSucceeded' || t === 'WorkflowNodeSucceeded' ? 'succeeded' : 'failed';
}

export interface CloudEventData {
  provider?: string;
  /** Run events only (running, run-completion): a step's outcome is `nodeStatus`, see cloudEventData. */
  status?: 'running' | 'succeeded' | 'failed';
  nodeStatus?: 'succeeded' | 'failed';
  pipelineName: string;
  runName: string;
  runId: string;
  runEndTime?: string;
  artifacts?: never[];
  servingModelArtifacts?: never[];
  nodeName?: string;
  argoNodeName?: string;
  eventType: EventType;
  phase: string;
  message: string;
  namespace: string;
  workflowName: string;
  workflowUid: string;
  /** The run in the KFP UI, when the callback knows the UI's address (--kfp-ui-url). */
  runUrl?: string;
}

/**
 * The `data` of each type; run-completion keeps kfp-operator's field names and shapes.
 *
 * A step's outcome is `nodeStatus`, never `status`: consumers written for kfp-operator filter
 * run-completion events on `status` and `pipelineName` only (an Argo Events Sensor on `body.status`,
 * with unanchored regexes), and step events often share their subject or endpoint. With a `status`
 * of `failed`, a failed step would look like a failed run to them; without the key, such a filter
 * cannot match a step event at all.
 */
export function cloudEventData(e: KfpEvent): CloudEventData {
  const completion = CLOUDEVENT_TYPES[e.EventType] === 'org.kubeflow.pipelines.run-completion';
  const node = e.EventType === 'WorkflowNodeSucceeded' || e.EventType === 'WorkflowNodeFailed';
  const outcome = status(e.EventType);
  return {
    ...(completion ? { provider: 'kfp-notify' } : {}),
    ...(node ? { nodeStatus: outcome === 'failed' ? 'failed' : 'succeeded' } : { status: outcome }),
    pipelineName: namespacedName(e.Namespace, e.PipelineName),
    runName: namespacedName(e.Namespace, e.RunName),
    runId: e.KfpRunId,
    // Artifacts would need KFP's metadata store; kfp-operator consumers expect the lists, so they are [].
    ...(completion ? { runEndTime: e.Time, artifacts: [], servingModelArtifacts: [] } : {}),
    ...(node ? { nodeName: e.NodeName, argoNodeName: e.ArgoNodeName } : {}),
    eventType: e.EventType,
    phase: e.Phase,
    message: e.Message,
    namespace: e.Namespace,
    workflowName: e.WorkflowName,
    workflowUid: e.WorkflowUid,
    ...(e.RunUrl ? { runUrl: e.RunUrl } : {}),
  };
}

export function toCloudEvent(e: KfpEvent): CloudEvent<CloudEventData> {
  const node = e.EventType === 'WorkflowNodeSucceeded' || e.EventType === 'WorkflowNodeFailed';
  return new CloudEvent<CloudEventData>({
    specversion: '1.0',
    id: e.EventId,
    source: cloudEventSource(e),
    type: CLOUDEVENT_TYPES[e.EventType],
    // The run for run events, the Argo node for step events.
    subject: node ? e.ArgoNodeName : e.KfpRunId,
    time: e.Time,
    datacontenttype: 'application/json',
    data: cloudEventData(e),
    // Extensions, so brokers (Knative triggers, Argo Events) can filter without reading data.
    kfprunid: e.KfpRunId,
    kfpnamespace: e.Namespace,
    kfpeventtype: e.EventType,
    ...(e.PipelineName ? { kfppipeline: e.PipelineName } : {}),
  });
}

/**
 * Binary-mode header values must be percent-encoded (HTTP protocol binding §3.1.3.2): space, '"',
 * '%' and anything outside printable ASCII, as UTF-8 bytes. The SDK leaves them raw, and a raw
 * non-ASCII display name would make the HTTP client refuse the request.
 */
export function percentEncodeHeaderValue(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const printable = byte >= 0x21 && byte <= 0x7e && byte !== 0x22 && byte !== 0x25;
    out += printable ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function toDelivery(message: Message, encodeCe: boolean): Delivery {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(message.headers)) {
    if (v === undefined) continue;
    const value = Array.isArray(v) ? v.join(', ') : String(v);
    const name = k.toLowerCase();
    headers[name] = encodeCe && name.startsWith('ce-') ? percentEncodeHeaderValue(value) : value;
  }
  return { headers, body: typeof message.body === 'string' ? message.body : JSON.stringify(message.body) };
}

export function cloudEventsStructuredDelivery(e: KfpEvent): Delivery {
  return toDelivery(HTTP.structured(toCloudEvent(e)), false);
}

export function cloudEventsBinaryDelivery(e: KfpEvent): Delivery {
  return toDelivery(HTTP.binary(toCloudEvent(e)), true);
}
