import type { KfpEvent } from '../types.js';
import { cloudEventData } from './cloudevents.js';
import type { Delivery } from './delivery.js';

/**
 * The message kfp-operator 0.7 and later really publishes for a run completion: `{"data": {...}}`,
 * its RunCompletionEvent wrapped in a `data` key, with no headers and no CloudEvents attributes
 * (integrations.md §7.2). Argo Events Sensors written for it filter `body.data.status` and
 * `body.data.pipelineName`. The fields are the run-completion data of the CloudEvents format, so both
 * kinds of kfp-operator consumer read the same values. Only run ends have this shape: the NATS
 * subscriber refuses other event types for this format when its config is read (nats/config.ts).
 */
export function kfpOperatorDelivery(e: KfpEvent): Delivery {
  return { headers: {}, body: JSON.stringify({ data: cloudEventData(e) }) };
}
