import type { NatsConnection, Subscription } from '@nats-io/transport-node';

/**
 * A test stand-in for an Argo Events NATS EventSource and a Sensor's data filters, written from
 * argo-events v1.9.11's code (integrations.md §7.1), not a real Argo Events:
 * - the EventSource is a core-NATS subscription; each message becomes event data
 *   `{subject, body, header}`; with `jsonBody: true` the body is the raw bytes embedded as JSON, and a
 *   body that is not JSON makes the event be dropped ("failed to marshal the event data");
 * - a Sensor's `filters.data` are gjson paths over that event data; a `string` filter's values are
 *   regular expressions matched unanchored, any one matching passes (`!=` inverts); a path that does
 *   not exist fails the filter; filters are and-ed (the default dataLogicalOperator).
 */

export interface EventSourceSpec {
  subject: string;
  jsonBody?: boolean;
}

export interface DataFilter {
  path: string;
  type: string;
  value: string[];
  comparator?: string;
}

export interface ArgoEventData {
  subject: string;
  body: unknown;
  header?: Record<string, string[]>;
}

export interface EventSourceStandIn {
  events: ArgoEventData[];
  /** Messages dropped as Argo Events would (a body that is not JSON with jsonBody: true). */
  dropped: number;
  sub: Subscription;
}

export function argoNatsEventSource(nc: NatsConnection, spec: EventSourceSpec): EventSourceStandIn {
  const out: EventSourceStandIn = { events: [], dropped: 0, sub: undefined as unknown as Subscription };
  out.sub = nc.subscribe(spec.subject, {
    callback: (_err, m) => {
      const header: Record<string, string[]> = {};
      for (const k of m.headers?.keys() ?? []) header[k] = m.headers?.values(k) ?? [];
      let body: unknown;
      if (spec.jsonBody) {
        try {
          body = JSON.parse(m.string());
        } catch {
          out.dropped++;
          return;
        }
      } else {
        body = Buffer.from(m.data).toString('base64');
      }
      out.events.push({ subject: m.subject, body, ...(Object.keys(header).length > 0 ? { header } : {}) });
    },
  });
  return out;
}

/** gjson's simple paths: dot-separated keys, numbers index arrays. */
function lookup(data: unknown, path: string): { exists: boolean; value?: unknown } {
  let cur: unknown = data;
  for (const part of path.split('.')) {
    if (Array.isArray(cur) && /^\d+$/.test(part)) cur = cur[Number(part)];
    else if (typeof cur === 'object' && cur !== null && Object.hasOwn(cur, part)) cur = (cur as Record<string, unknown>)[part];
    else return { exists: false };
    if (cur === undefined) return { exists: false };
  }
  return { exists: true, value: cur };
}

function asString(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Whether one event passes every data filter of a Sensor dependency. */
export function sensorFires(filters: readonly DataFilter[], event: ArgoEventData): boolean {
  return filters.every((f) => {
    const got = lookup(event, f.path);
    if (!got.exists) return false;
    if (f.type !== 'string') throw new Error(`this stand-in evaluates string filters only (got ${f.type})`);
    const matched = f.value.some((re) => new RegExp(re, 'u').test(asString(got.value)));
    return f.comparator === '!=' ? !matched : matched;
  });
}
