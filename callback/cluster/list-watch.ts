import { Watch, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.js';
import { errorMessage } from '../../common/error-message.js';

/**
 * List-then-watch for one kind of object, the way client-go's reflector does it, without keeping the
 * objects: consumers get each object once per change and keep only what they need (a KFP Workflow
 * with its status can weigh hundreds of kilobytes; a cache of every one of them is what we avoid).
 *
 * - Lists in pages (`limit` + `continue`), then watches from the list's resourceVersion.
 * - A watch that ends cleanly (the server's `timeoutSeconds`) resumes from the last version seen.
 * - A 410 Gone (history compacted) or any error (network cut, 5xx, 403) leads to a fresh list after
 *   a capped exponential backoff; objects missing from that list are reported deleted.
 * - Never throws to its caller and never stops on its own; `stop()` ends it.
 */

export interface KubeMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
}
export interface KubeObject {
  metadata?: KubeMeta;
  [k: string]: unknown;
}
/** One page of a collection: what the client-node list calls resolve to (a `…List` object). */
export type ListFn = (page: { limit: number; continueToken?: string }) => Promise<unknown>;

function pageOf(v: unknown): { items: unknown[]; resourceVersion: string; continueToken: string } {
  const page = isObject(v) ? v : {};
  const meta = isObject(page.metadata) ? page.metadata : {};
  return {
    items: Array.isArray(page.items) ? page.items : [],
    resourceVersion: typeof meta.resourceVersion === 'string' ? meta.resourceVersion : '',
    continueToken: typeof meta.continue === 'string' ? meta.continue : '',
  };
}

export interface ListWatchOptions {
  kubeConfig: KubeConfig;
  /** Watch path: `/apis/argoproj.io/v1alpha1/workflows`, `/api/v1/namespaces/ns/configmaps`... */
  path: string;
  /** The same collection as `path`, with the same selectors, one page per call. */
  list: ListFn;
  labelSelector?: string;
  fieldSelector?: string;
  /** What the logs and metrics call this stream. */
  resource: string;
  log: Logger;
  onUpsert: (obj: KubeObject) => void;
  onDelete: (obj: KubeObject) => void;
  /** After every complete list (the first one makes `synced()` true). */
  onSynced?: () => void;
  onError?: (err: unknown) => void;
  onRelist?: () => void;
  pageSize?: number;
  /** Asked of the server so a silently dead connection cannot stall us forever. */
  watchTimeoutSeconds?: number;
  backoff?: { initialMs: number; maxMs: number };
}

export interface ListWatchHandle {
  stop(): Promise<void>;
  /** True once a full list has been delivered. */
  synced(): boolean;
  /** The last error, cleared by the next successful list or watch. */
  lastError(): string | undefined;
}

const STOP_WAIT_MS = 2000;

class GoneError extends Error {
  readonly code = 410;
}

export function objectKey(obj: KubeObject): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

export function errorStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e.code === 'number') return e.code;
  if (typeof e.statusCode === 'number') return e.statusCode;
  return undefined;
}

export function errorText(err: unknown): string {
  const status = errorStatus(err);
  const msg = errorMessage(err);
  // ApiException messages embed the whole response body; the first line says enough.
  const first = msg.split('\n')[0] ?? msg;
  return status !== undefined && !first.includes(String(status)) ? `HTTP ${status}: ${first}` : first;
}

function isObject(v: unknown): v is KubeObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function startListWatch(opts: ListWatchOptions): ListWatchHandle {
  const pageSize = opts.pageSize ?? 100;
  const backoff = opts.backoff ?? { initialMs: 1000, maxMs: 30_000 };
  const log = opts.log.child({ resource: opts.resource });
  /** key → what the consumer last saw of it: enough to skip unchanged objects and spot deletions across a relist. */
  const known = new Map<string, { rv: string; uid: string }>();
  let resourceVersion = '';
  let stopped = false;
  let synced = false;
  let lastError: string | undefined;
  let abortWatch: AbortController | undefined;
  let wake: (() => void) | undefined;

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  // A consumer that throws on one object must not stop the stream (nor loop a relist forever).
  function deliver(handler: (obj: KubeObject) => void, obj: KubeObject): void {
    try {
      handler(obj);
    } catch (err) {
      log.error({ err: errorText(err), object: objectKey(obj) }, 'watch consumer failed on an object');
      opts.onError?.(err);
    }
  }

  function upsert(obj: KubeObject): void {
    const key = objectKey(obj);
    const rv = obj.metadata?.resourceVersion ?? '';
    if (rv !== '' && known.get(key)?.rv === rv) return;
    known.set(key, { rv, uid: obj.metadata?.uid ?? '' });
    deliver(opts.onUpsert, obj);
  }

  function remove(obj: KubeObject): void {
    known.delete(objectKey(obj));
    deliver(opts.onDelete, obj);
  }

  async function relist(): Promise<void> {
    const seen = new Set<string>();
    let continueToken: string | undefined;
    let rv = '';
    do {
      const page = pageOf(await opts.list({ limit: pageSize, continueToken }));
      for (const item of page.items) {
        if (!isObject(item)) continue;
        seen.add(objectKey(item));
        upsert(item);
      }
      rv = page.resourceVersion || rv;
      continueToken = page.continueToken || undefined;
    } while (continueToken && !stopped);
    for (const [key, last] of known) {
      if (seen.has(key)) continue;
      const slash = key.indexOf('/');
      remove({ metadata: { namespace: key.slice(0, slash), name: key.slice(slash + 1), uid: last.uid } });
    }
    resourceVersion = rv;
    synced = true;
    lastError = undefined;
    opts.onSynced?.();
  }

  /** Resolves when the server ends the watch cleanly; rejects on errors (GoneError for 410). */
  function watchOnce(): Promise<void> {
    return new Promise((resolve, reject) => {
      let failure: Error | undefined;
      const params: Record<string, string | number | boolean | undefined> = {
        resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: opts.watchTimeoutSeconds ?? 300,
        labelSelector: opts.labelSelector,
        fieldSelector: opts.fieldSelector,
      };
      const onEvent = (type: string, obj: unknown): void => {
        if (!isObject(obj)) return;
        if (type === 'ERROR') {
          const code = typeof obj.code === 'number' ? obj.code : undefined;
          const message = typeof obj.message === 'string' ? obj.message : 'watch error';
          failure = code === 410 ? new GoneError(message) : Object.assign(new Error(message), { code });
          abortWatch?.abort();
          return;
        }
        if (type === 'ADDED' || type === 'MODIFIED') upsert(obj);
        else if (type === 'DELETED') remove(obj);
        // BOOKMARK only moves the version on.
        resourceVersion = obj.metadata?.resourceVersion ?? resourceVersion;
        lastError = undefined;
      };
      const onDone = (err: unknown): void => {
        abortWatch = undefined;
        if (failure) reject(failure);
        else if (err && !(stopped && err instanceof Error && err.name === 'AbortError')) reject(err);
        else resolve();
      };
      new Watch(opts.kubeConfig)
        .watch(opts.path, params, onEvent, onDone)
        .then((controller) => {
          abortWatch = controller;
          if (stopped) controller.abort();
        })
        .catch(reject);
    });
  }

  async function loop(): Promise<void> {
    let delay = backoff.initialMs;
    while (!stopped) {
      try {
        if (!resourceVersion) {
          opts.onRelist?.();
          await relist();
          delay = backoff.initialMs;
        }
        if (stopped) break;
        const started = Date.now();
        await watchOnce();
        // A server that keeps closing watches at once would otherwise make this a busy loop.
        if (Date.now() - started < 1000) await sleep(backoff.initialMs);
      } catch (err) {
        if (stopped) break;
        const status = errorStatus(err);
        resourceVersion = '';
        if (err instanceof GoneError || status === 410) {
          log.info({ reason: errorText(err) }, 'watch history expired; listing again');
          continue;
        }
        lastError = errorText(err);
        opts.onError?.(err);
        log.warn({ err: lastError, retryInMs: delay }, 'list/watch failed; listing again after a pause');
        await sleep(delay);
        delay = Math.min(delay * 2, backoff.maxMs);
      }
    }
  }

  const running = loop().catch((err: unknown) => log.error({ err: errorText(err) }, 'list/watch loop ended unexpectedly'));

  return {
    async stop() {
      stopped = true;
      abortWatch?.abort();
      wake?.();
      // A watch request still waiting for its response headers cannot be aborted yet (client-node
      // hands out its AbortController only once they arrive); it is aborted then, without us.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([running, new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_WAIT_MS)))]);
      clearTimeout(timer);
    },
    synced: () => synced,
    lastError: () => lastError,
  };
}
