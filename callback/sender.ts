import type { IncomingHttpHeaders } from 'node:http';
import { Agent, type Dispatcher } from 'undici';
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

/** Shutdown signals, each with one listener however many sends it covers (a listener per send costs a list walk to remove). */
const watched = new WeakMap<AbortSignal, Set<Post>>();

function watch(signal: AbortSignal, post: Post): void {
  let posts = watched.get(signal);
  if (!posts) {
    const set = (posts = new Set());
    watched.set(signal, set);
    const cancelAll = () => {
      for (const p of set) p.cancel(signal.reason);
      set.clear();
    };
    signal.addEventListener('abort', cancelAll, { once: true });
  }
  posts.add(post);
}

/** Origin and path of a subscriber URL, parsed once: a subscriber posts to the same URL every time. */
const targets = new Map<string, { origin: string; path: string }>();
const MAX_TARGETS = 4096;

function target(url: string): { origin: string; path: string } {
  let t = targets.get(url);
  if (!t) {
    const u = new URL(url);
    t = { origin: u.origin, path: `${u.pathname}${u.search}` };
    if (targets.size >= MAX_TARGETS) targets.clear();
    targets.set(url, t);
  }
  return t;
}

/**
 * One POST as an undici dispatch handler: the response body is counted and dropped as it arrives
 * (no stream), and the timeout and shutdown abort through the request's own controller (no
 * AbortController, no promise per phase). The result settles once: at the end of the response, on
 * an error, at the timeout or on shutdown, whichever comes first.
 */
class Post implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private status = 0;
  private retryAfter: string | undefined;
  private drained = 0;
  private done = false;
  private reason: Error | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly started = performance.now();

  constructor(
    private readonly req: SendRequest,
    private readonly resolve: (r: SendResult) => void,
  ) {
    this.timer = setTimeout(() => this.cancel(new DOMException(`timeout after ${req.timeoutMs} ms`, 'TimeoutError'), true), req.timeoutMs);
    this.timer.unref();
  }

  /** Ends the attempt now (timeout, shutdown): the request is aborted as soon as undici has started it. */
  cancel(reason: unknown, timedOut = false): void {
    if (this.done) return;
    this.reason = reason instanceof Error ? reason : new Error(String(reason ?? 'aborted'));
    this.controller?.abort(this.reason);
    this.fail(this.reason, timedOut);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.reason) controller.abort(this.reason);
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    this.status = statusCode;
    const h = headers['retry-after'];
    this.retryAfter = Array.isArray(h) ? h[0] : h;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.drained += chunk.length;
    // Past the limit the answer is known and the body is not worth reading: the connection is dropped instead.
    if (this.drained > DRAIN_LIMIT) {
      this.answer();
      controller.abort(new Error('response body over the drain limit'));
    }
  }

  onResponseEnd(): void {
    this.answer();
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.fail(err);
  }

  private finish(result: SendResult): void {
    this.done = true;
    clearTimeout(this.timer);
    if (this.req.signal) watched.get(this.req.signal)?.delete(this);
    this.resolve(result);
  }

  private durationMs(): number {
    return Math.round((performance.now() - this.started) * 10) / 10;
  }

  private answer(): void {
    if (this.done) return;
    const status = this.status;
    if (status >= 200 && status < 300) return this.finish({ ok: true, status, durationMs: this.durationMs() });
    const retryAfterSeconds = parseRetryAfter(this.retryAfter, new Date());
    this.finish({
      ok: false,
      status,
      ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
      error: status >= 300 && status < 400 ? `HTTP ${status} (redirects are not followed)` : `HTTP ${status}`,
      durationMs: this.durationMs(),
    });
  }

  /** A failure with no HTTP answer (also what dispatch throws). */
  fail(err: unknown, timedOut = false): void {
    if (this.done) return;
    this.finish({ ok: false, error: describeError(err, timedOut, this.req.timeoutMs), durationMs: this.durationMs() });
  }
}

export function createSender(opts: { userAgent?: string } = {}): Sender {
  const agent = new Agent({ keepAliveTimeout: 30_000, connections: 64 });
  const userAgent = opts.userAgent ?? 'kfp-notify';

  return {
    send(req) {
      return new Promise<SendResult>((resolve) => {
        const post = new Post(req, resolve);
        if (req.signal?.aborted) return post.cancel(req.signal.reason);
        if (req.signal) watch(req.signal, post);
        try {
          const { origin, path } = target(req.url);
          agent.dispatch(
            {
              origin,
              path,
              method: 'POST',
              headers: { 'user-agent': userAgent, ...req.headers },
              body: req.body,
              headersTimeout: req.timeoutMs,
              bodyTimeout: req.timeoutMs,
            },
            post,
          );
        } catch (err) {
          post.fail(err);
        }
      });
    },
    async close() {
      await agent.close();
    },
  };
}
