import type { NatsTarget } from './nats/config.js';
import type { KfpRunTarget } from './kfp-run/target.js';

/**
 * The vocabulary of the callback side. Pure modules (normalize, route, retry, formats) and edge
 * modules (store, worker, sender, watcher) all speak in these types.
 */

import type { CompiledTemplate } from './template.js';
import type { StepFailure } from './failure-summary.js';

export const EVENT_TYPES = [
  'WorkflowRunning',
  'WorkflowSucceeded',
  'WorkflowFailed',
  'WorkflowNodeSucceeded',
  'WorkflowNodeFailed',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export function isEventType(s: string): s is EventType {
  return (EVENT_TYPES as readonly string[]).includes(s);
}

/**
 * The documented event. The first five fields, their names, casing and order are the
 * kfp-event-handler contract: its subscribers must keep working unchanged. Extra fields follow.
 */
export interface KfpEvent {
  KfpRunId: string;
  WorkflowName: string;
  /** The step's display name as KFP shows it; '' for workflow-level events. */
  NodeName: string;
  EventType: EventType;
  /** Argo's wording: `Succeeded node <argo node name>`, `Failed node <name>: <message>`, `Workflow completed`... */
  Message: string;
  /** Deterministic: the same fact reported by a hook, a retried hook or the watcher has the same id. */
  EventId: string;
  Namespace: string;
  PipelineName: string;
  RunName: string;
  /** Argo phase behind the event: Running, Succeeded, Failed, Error (and Terminated for a KFP terminate). */
  Phase: string;
  /** RFC 3339: when the fact happened if known (watcher), else when the hook call arrived. */
  Time: string;
  /** Full Argo node name of the step ('' for workflow-level events): the node part of EventId. */
  ArgoNodeName: string;
  WorkflowUid: string;
  Source: 'hook' | 'watcher';
  /** The KFP recurring run (ScheduledWorkflow) that started this run; '' for a one-off run. */
  RecurringRunName: string;
  /**
   * The run in the KFP UI (`<kfp ui base>/#/runs/details/<KfpRunId>`), '' when no UI base URL is
   * configured (--kfp-ui-url). Set once, at ingest, for both sources. Events stored before this field
   * existed read back without it: read it as `RunUrl ?? ''`.
   */
  RunUrl: string;
}

export type PayloadFormat = 'json' | 'cloudevents-structured' | 'cloudevents-binary' | 'kfp-operator' | 'slack' | 'teams' | 'github' | 'template';

export interface RetryPolicy {
  /** Seconds to wait before attempt 2, 3, ...; its length + 1 is the number of attempts. */
  schedule: number[];
  /** Fraction of each delay added or removed at random (0.2 = ±20%). */
  jitter: number;
}

export interface SecretRef {
  name: string;
  key: string;
}

/**
 * How a subscriber is reached. `http` and `log` are built into the worker; every other type is a
 * Transport (below) that the runtime registers, each in its own module.
 */
export type SubscriberType = 'http' | 'log' | 'nats' | 'kfp-run';

export interface Subscriber {
  name: string;
  type: SubscriberType;
  /** Required for type http. */
  url?: string;
  /** Required for type nats: servers, subject, TLS and credentials (callback/nats/config.ts). */
  nats?: NatsTarget;
  /** Filters; undefined or empty means "all". */
  eventTypes?: EventType[];
  namespaces?: string[];
  pipelines?: string[];
  /** Recurring run (ScheduledWorkflow) names, `*` globs; '' (a one-off run) matches only `*`. */
  recurringRuns?: string[];
  format: PayloadFormat;
  /** Format `template`: the admin's body template, compiled when the config was read. */
  template?: CompiledTemplate;
  /** Format `template`: the body's Content-Type (default application/json). */
  contentType?: string;
  headers: Record<string, string>;
  /** Names (lower case) of the headers whose value came from a Secret: masked in the attempt log. */
  secretHeaders?: string[];
  /** Where the Standard Webhooks signing key(s) come from; resolved into signingKeys at load. */
  signingKeyRef?: SecretRef;
  /** `whsec_...` secrets; the first signs, every one is sent (space-separated) during rotation. */
  signingKeys?: string[];
  timeoutMs: number;
  maxConcurrency: number;
  retry: RetryPolicy;
  /** Type kfp-run: which pipeline to start and how (callback/kfp-run/target.ts). */
  kfpRun?: KfpRunTarget;
}

/** What one attempt to deliver one event to one subscriber came to. Never thrown: returned. */
export interface SendResult {
  ok: boolean;
  /** HTTP status, when a response arrived. */
  status?: number;
  /** Seconds, from a Retry-After header on 429/503. */
  retryAfterSeconds?: number;
  /** Transport or timeout error, or a short reason for a non-2xx status. */
  error?: string;
  /** Retrying cannot help (a KFP 400, a trigger loop): dead-letter at once, with `error` as the reason. */
  permanent?: boolean;
  durationMs: number;
}

/**
 * Delivers one event to one subscriber of a non-HTTP type (NATS, KFP run trigger). Like the HTTP
 * sender it never throws: every outcome is a SendResult, so retries, backoff, dead letters and replay
 * work the same for every type. `status` may carry an HTTP-like code where the transport has one
 * (a KFP API answer); a transport failure with no answer leaves it undefined (the lane then pauses
 * as for an unreachable HTTP endpoint).
 */
export interface Transport {
  deliver(subscriber: Subscriber, event: KfpEvent, signal: AbortSignal): Promise<SendResult>;
  close(): Promise<void>;
}

/** The KfpEvent keys in their documented order: JSON output (and every doc example) follows it. */
export const KFP_EVENT_FIELDS = [
  'KfpRunId',
  'WorkflowName',
  'NodeName',
  'EventType',
  'Message',
  'EventId',
  'Namespace',
  'PipelineName',
  'RunName',
  'Phase',
  'Time',
  'ArgoNodeName',
  'WorkflowUid',
  'Source',
  'RecurringRunName',
  'RunUrl',
] as const satisfies readonly (keyof KfpEvent)[];

/** One node of a Workflow's status, as far as events need it. */
export interface SnapshotNode {
  /** Argo phase: Pending, Running, Succeeded, Failed, Error, Skipped, Omitted. */
  phase: string;
  message?: string;
  displayName?: string;
  /** RFC 3339. */
  finishedAt?: string;
  /** RFC 3339; tells a re-created node (a KFP retry's new attempt) from the one before (callback/attempt.ts). */
  startedAt?: string;
}

/**
 * An already-fetched view of a Workflow (GET by an edge, or the watcher's informer cache), reduced to
 * what normalizing a hook call can use. Build it with `toWorkflowSnapshot(rawWorkflow)` (normalize.ts).
 */
export interface WorkflowSnapshot {
  uid?: string;
  /** status.phase */
  phase?: string;
  /** status.message */
  message?: string;
  /** status.finishedAt (RFC 3339): the attempt of a run end when there is no exit node (callback/attempt.ts). */
  finishedAt?: string;
  /** status.nodes re-keyed by node *name* (Argo keys them by id), the name hook calls know. */
  nodes: Record<string, SnapshotNode>;
  annotations: Record<string, string>;
  labels: Record<string, string>;
  /** KFP "Terminate" (spec.activeDeadlineSeconds: 0) or spec.shutdown set. */
  terminated: boolean;
  /** The failed KFP steps, named as the KFP UI names them, each with its error (failure-summary.ts). */
  failedSteps?: StepFailure[];
}

/**
 * Something an admin should hear about beyond the logs: a subscriber disabled by a 410, or a delivery
 * that used its last attempt. In a cluster these become Kubernetes Events (kubectl get events).
 */
export interface DeliveryNotice {
  kind: 'subscriber-disabled' | 'dead-lettered';
  subscriber: string;
  eventId: string;
  reason: string;
}
