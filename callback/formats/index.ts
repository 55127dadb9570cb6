import type { KfpEvent, PayloadFormat, Subscriber } from '../types.js';
import { jsonDelivery } from './json.js';
import { cloudEventsBinaryDelivery, cloudEventsStructuredDelivery } from './cloudevents.js';
import type { Delivery } from './delivery.js';

export type { Delivery } from './delivery.js';
export { eventJson } from './json.js';
export { CLOUDEVENT_TYPES, cloudEventData, cloudEventSource, toCloudEvent } from './cloudevents.js';

const FORMATTERS: Readonly<Record<PayloadFormat, (e: KfpEvent) => Delivery>> = {
  json: jsonDelivery,
  'cloudevents-structured': cloudEventsStructuredDelivery,
  'cloudevents-binary': cloudEventsBinaryDelivery,
};

/** The body and content headers of one event in the subscriber's format. */
export function formatDelivery(event: KfpEvent, subscriber: Pick<Subscriber, 'format'>): Delivery {
  return FORMATTERS[subscriber.format](event);
}
