import { KFP_EVENT_FIELDS, type KfpEvent } from '../types.js';
import type { Delivery } from './delivery.js';

/**
 * The documented JSON event, kfp-event-handler's five fields first. Keys are written in
 * KFP_EVENT_FIELDS order whatever order the object was built or stored in, because receivers written
 * against kfp-event-handler may compare or log the text.
 */
export function eventJson(event: KfpEvent): string {
  const ordered: Record<string, string> = {};
  // `?? ''`: events stored before RunUrl existed read back without it.
  for (const k of KFP_EVENT_FIELDS) ordered[k] = event[k] ?? '';
  return JSON.stringify(ordered);
}

export function jsonDelivery(event: KfpEvent): Delivery {
  return { headers: { 'content-type': 'application/json' }, body: eventJson(event) };
}
