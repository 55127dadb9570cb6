import { k8sName } from '../common/kfp/k8s-name.js';
import type { KfpEvent, Subscriber } from './types.js';

/**
 * Which subscribers get an event. Pure; the ingest path calls it once per event and queues one
 * delivery per subscriber returned, in the order given.
 */

/** `*` matches any run of characters (`team-*`, `*-nightly`); everything else matches itself. */
export function matchesPattern(pattern: string, value: string): boolean {
  if (!pattern.includes('*')) return pattern === value;
  const parts = pattern.split('*');
  const first = parts[0] as string;
  const last = parts[parts.length - 1] as string;
  if (!value.startsWith(first) || value.length < first.length + last.length || !value.endsWith(last)) return false;
  let at = first.length;
  const end = value.length - last.length;
  for (const middle of parts.slice(1, -1)) {
    const i = value.indexOf(middle, at);
    if (i < 0 || i + middle.length > end) return false;
    at = i + middle.length;
  }
  return true;
}

/** A filter that is absent or empty lets everything through; otherwise one pattern must match. */
function passes(filter: readonly string[] | undefined, value: string): boolean {
  return !filter || filter.length === 0 || filter.some((p) => matchesPattern(p, value));
}

/** A pattern in Kubernetes form (lowercase letters, digits, '-', '*'): it cannot mean a display name with capitals or spaces. */
const K8S_PATTERN = /^[-0-9a-z*]+$/;

/**
 * pipelines: a pattern matches the event's PipelineName (the name the pipeline was compiled with,
 * as KFP shows it: "Save Most Frequent") or, when the pattern is in Kubernetes form, that name's
 * Kubernetes form ("save-most-frequent", the Workflow's generateName prefix), so a filter copied
 * from either place works. An unknown pipeline ('') matches only `*`: nothing says it is one of the
 * named pipelines.
 */
export function matchesPipeline(patterns: readonly string[] | undefined, pipelineName: string): boolean {
  if (!patterns || patterns.length === 0) return true;
  if (patterns.some((p) => matchesPattern(p, pipelineName))) return true;
  if (pipelineName === '') return false;
  const asK8s = k8sName(pipelineName);
  return asK8s !== pipelineName && patterns.some((p) => K8S_PATTERN.test(p) && matchesPattern(p, asK8s));
}

export function wants(subscriber: Subscriber, event: KfpEvent): boolean {
  // eventTypes: exact EventType names (checked against EVENT_TYPES when the config was parsed).
  if (subscriber.eventTypes && subscriber.eventTypes.length > 0 && !subscriber.eventTypes.includes(event.EventType)) return false;
  // namespaces: the run's Kubernetes namespace (a KFP profile in multi-user installs).
  if (!passes(subscriber.namespaces, event.Namespace)) return false;
  // pipelines: the pipeline's name (its display name, or the Kubernetes form of it: matchesPipeline).
  // An event whose pipeline is unknown ('') matches only `*`: nothing says it is one of the named pipelines.
  if (!matchesPipeline(subscriber.pipelines, event.PipelineName)) return false;
  // recurringRuns: the ScheduledWorkflow that started the run; a one-off run ('') matches only `*`.
  return passes(subscriber.recurringRuns, event.RecurringRunName);
}

export function route(event: KfpEvent, subscribers: readonly Subscriber[]): Subscriber[] {
  return subscribers.filter((s) => wants(s, event));
}
