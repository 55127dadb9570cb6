import type { KfpEvent, PayloadFormat, Subscriber } from '../types.js';
import { jsonDelivery } from './json.js';
import { cloudEventsBinaryDelivery, cloudEventsStructuredDelivery } from './cloudevents.js';
import type { Delivery } from './delivery.js';
import { kfpOperatorDelivery } from './kfp-operator.js';
import { slackDelivery } from './slack.js';
import { teamsDelivery } from './teams.js';
import { githubDelivery } from './github.js';
import { templateDelivery } from './template.js';

export type { Delivery } from './delivery.js';
export { eventJson } from './json.js';
export { CLOUDEVENT_TYPES, cloudEventData, cloudEventSource, toCloudEvent } from './cloudevents.js';

type FormatOf = Pick<Subscriber, 'format' | 'template' | 'contentType'>;

/** Formats whose body depends on the event alone; `template` also depends on the subscriber. */
const FORMATTERS: Readonly<Record<Exclude<PayloadFormat, 'template'>, (e: KfpEvent) => Delivery>> = {
  json: jsonDelivery,
  'cloudevents-structured': cloudEventsStructuredDelivery,
  'cloudevents-binary': cloudEventsBinaryDelivery,
  'kfp-operator': kfpOperatorDelivery,
  slack: slackDelivery,
  teams: teamsDelivery,
  github: githubDelivery,
};

// Formatted deliveries of frozen events, which the store hands out once per event for all its
// subscribers (store/event-cache.ts): ten subscribers in one format cost one body. Keyed by the
// object, so an entry lives exactly as long as someone holds the event.
const formatted = new WeakMap<KfpEvent, Partial<Record<PayloadFormat, Readonly<Delivery>>>>();

/** The body and content headers of one event in the subscriber's format (shared: do not modify). */
export function formatDelivery(event: KfpEvent, subscriber: FormatOf): Readonly<Delivery> {
  // A template body is the subscriber's own: never shared.
  if (subscriber.format === 'template') return templateDelivery(event, subscriber);
  // An event that can still change could not share its body.
  if (!Object.isFrozen(event)) return FORMATTERS[subscriber.format](event);
  let byFormat = formatted.get(event);
  if (!byFormat) formatted.set(event, (byFormat = {}));
  const hit = byFormat[subscriber.format];
  if (hit) return hit;
  const d = FORMATTERS[subscriber.format](event);
  Object.freeze(d.headers);
  return (byFormat[subscriber.format] = Object.freeze(d));
}
