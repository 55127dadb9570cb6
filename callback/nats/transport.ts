import type { Logger } from '../../common/logger.js';
import type { KfpEvent, SendResult, Subscriber, Transport } from '../types.js';
import { natsConnections } from './connections.js';
import { natsMessage } from './message.js';
import { publish, type PublishResult } from './publish.js';

/**
 * The `nats` subscriber type: event → message (message.ts) → shared connection (connections.ts) →
 * publish and decide (publish.ts). Registered by the runtime as `transports.nats`, so retries, backoff,
 * dead letters and replay are the worker's, as for HTTP. The subscriber's `timeout` bounds the
 * connect and each wait for the server; a server that cannot be reached gives a failure with no
 * status (the lane pauses; nothing is lost, other subscribers carry on).
 */

/** `work`, or a failure as soon as `signal` aborts (shutdown), whichever comes first; the listener is removed either way. */
function unlessAborted(work: Promise<PublishResult>, signal: AbortSignal): Promise<PublishResult> {
  if (signal.aborted) return Promise.resolve({ ok: false, error: 'shutting down' });
  let onAbort: (() => void) | undefined;
  const cut = new Promise<PublishResult>((resolve) => {
    onAbort = () => resolve({ ok: false, error: 'shutting down' });
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([work, cut]).finally(() => signal.removeEventListener('abort', onAbort as () => void));
}

export function createNatsTransport(opts: { log: Logger }): Transport {
  const { log } = opts;
  const connections = natsConnections({ log });

  async function attempt(sub: Subscriber, event: KfpEvent): Promise<PublishResult> {
    const target = sub.nats;
    if (!target) return { ok: false, status: 400, error: 'type nats without url and subject (the config parser should have refused it)' };
    const message = natsMessage(event, { format: sub.format, subject: target.subject });
    // A subject the template cannot make for this event: a bad request, retried by the schedule and then dead-lettered.
    if (!message.ok) return { ok: false, status: 400, error: message.error };
    const conn = await connections.get(target, sub.timeoutMs);
    if (!conn.ok) return { ok: false, error: conn.error };
    const r = await publish(conn.nc, message.message, sub.timeoutMs);
    if (r.ok && r.via === 'jetstream' && r.duplicate) {
      log.debug({ subscriber: sub.name, eventId: event.EventId, stream: r.stream, seq: r.seq }, 'NATS: the stream already had this event (duplicate ack)');
    }
    return r;
  }

  return {
    async deliver(sub, event, signal): Promise<SendResult> {
      const started = performance.now();
      const r = await unlessAborted(attempt(sub, event), signal);
      const durationMs = Math.round((performance.now() - started) * 10) / 10;
      if (r.ok) return { ok: true, durationMs };
      return { ok: false, ...(r.status !== undefined ? { status: r.status } : {}), error: r.error, durationMs };
    },
    close: () => connections.close(),
  };
}
