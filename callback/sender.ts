import { Agent, request } from 'undici';
import { parseRetryAfter } from './retry.js';
import type { SendResult } from './types.js';

/**
 * One HTTP POST to one subscriber, as a value: `send` never throws, whatever the network does.
 *
 * - The subscriber's timeout bounds the whole exchange (connect + headers + body), not each phase.
 * - Redirects are never followed: a 3xx is a failed attempt (Standard Webhooks, CloudEvents webhook spec).
 * - Connections are kept alive per origin, so a busy subscriber does not pay a handshake per event.
 */

export interface SendRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  /** Aborts the attempt early (shutdown). */
  signal?: AbortSignal;
}

export interface Sender {
  send(req: SendRequest): Promise<SendResult>;
  close(): Promise<void>;
}

/** How much of a response body is read (and thrown away) to keep the connection reusable. */
const DRAIN_LIMIT = 64 * 1024;

function describeError(err: unknown, timedOut: boolean, timeoutMs: number): string {
  if (timedOut) return `timeout after ${timeoutMs} ms`;
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? err.cause : undefined;
  const code = (err as { code?: unknown }).code ?? (cause as { code?: unknown } | undefined)?.code;
  const text = cause && cause.message !== err.message ? `${err.message}: ${cause.message}` : err.message;
  return typeof code === 'string' ? `${code}: ${text}` : text;
}

export function createSender(opts: { userAgent?: string } = {}): Sender {
  const agent = new Agent({ keepAliveTimeout: 30_000, connections: 64 });
  const userAgent = opts.userAgent ?? 'kfp-notify';

  return {
    async send(req) {
      const started = performance.now();
      // One controller and a plain timer: AbortSignal.timeout + AbortSignal.any cost more than the
      // rest of the send's own bookkeeping on a fast subscriber.
      const abort = new AbortController();
      let timedOut = false;
      const deadline = setTimeout(() => {
        timedOut = true;
        abort.abort(new DOMException(`timeout after ${req.timeoutMs} ms`, 'TimeoutError'));
      }, req.timeoutMs);
      deadline.unref();
      const cancel = () => abort.abort(req.signal?.reason);
      if (req.signal?.aborted) cancel();
      else req.signal?.addEventListener('abort', cancel, { once: true });
      const signal = abort.signal;
      const duration = () => Math.round((performance.now() - started) * 10) / 10;
      try {
        const res = await request(req.url, {
          method: 'POST',
          headers: { 'user-agent': userAgent, ...req.headers },
          body: req.body,
          dispatcher: agent,
          signal,
          headersTimeout: req.timeoutMs,
          bodyTimeout: req.timeoutMs,
        });
        await res.body.dump({ limit: DRAIN_LIMIT }).catch(() => undefined);
        const status = res.statusCode;
        if (status >= 200 && status < 300) return { ok: true, status, durationMs: duration() };
        const header = res.headers['retry-after'];
        const retryAfterSeconds = parseRetryAfter(Array.isArray(header) ? header[0] : header, new Date());
        return {
          ok: false,
          status,
          ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
          error: status >= 300 && status < 400 ? `HTTP ${status} (redirects are not followed)` : `HTTP ${status}`,
          durationMs: duration(),
        };
      } catch (err) {
        return { ok: false, error: describeError(err, timedOut, req.timeoutMs), durationMs: duration() };
      } finally {
        clearTimeout(deadline);
        req.signal?.removeEventListener('abort', cancel);
      }
    },
    async close() {
      await agent.close();
    },
  };
}
