/**
 * Group commit: callers submit work one by one; everything submitted before the next turn of the
 * event loop is written by one call to `commit` (one transaction), made durable by one call to
 * `durable` (one fsync), and each caller's promise settles only after both.
 *
 * Why: one fsync per hook call would cap throughput at the disk's fsync rate; one per tick shares
 * the wait among all the calls that arrived meanwhile. And because `durable` is asynchronous (an
 * fsync on libuv's thread pool) the event loop keeps reading requests while the disk works.
 */

export interface GroupCommitStats {
  /** How many submissions the commit held. */
  size: number;
  /** From the start of the transaction to the end of its fsync. */
  durationMs: number;
}

export interface GroupCommitter<I, R> {
  submit(items: readonly I[]): Promise<R[]>;
  /** Commits what is queued now, without waiting for the next tick. */
  flush(): void;
}

export interface GroupCommitOptions {
  /** Resolves once everything committed so far is on disk; a rejection fails the whole batch. */
  durable?: () => Promise<void>;
  onCommit?: (stats: GroupCommitStats) => void;
}

interface Waiting<I, R> {
  items: readonly I[];
  resolve: (r: R[]) => void;
  reject: (e: unknown) => void;
}

/**
 * `commit` gets the submissions of one tick, in order, and returns one result list per submission;
 * if it throws, every submission of that tick rejects with the error.
 */
export function groupCommit<I, R>(commit: (batches: ReadonlyArray<readonly I[]>) => R[][], opts: GroupCommitOptions = {}): GroupCommitter<I, R> {
  let queue: Waiting<I, R>[] = [];
  let scheduled: NodeJS.Immediate | undefined;

  function flush(): void {
    if (scheduled) clearImmediate(scheduled);
    scheduled = undefined;
    const batch = queue;
    queue = [];
    if (batch.length === 0) return;
    const started = performance.now();
    let results: R[][];
    try {
      results = commit(batch.map((w) => w.items));
    } catch (err) {
      for (const w of batch) w.reject(err);
      return;
    }
    const settle = () => {
      opts.onCommit?.({ size: batch.length, durationMs: performance.now() - started });
      batch.forEach((w, i) => w.resolve(results[i] ?? []));
    };
    if (!opts.durable) return settle();
    opts.durable().then(settle, (err: unknown) => {
      for (const w of batch) w.reject(err);
    });
  }

  return {
    submit(items) {
      return new Promise<R[]>((resolve, reject) => {
        queue.push({ items, resolve, reject });
        // setImmediate runs after pending I/O callbacks: requests already read this turn join the batch.
        scheduled ??= setImmediate(flush);
      });
    },
    flush,
  };
}

/**
 * A sync barrier: `sync()` resolves after a run of `flush` that *started* after the call, so it
 * covers every write made before the call. Up to `maxRunning` flushes overlap (a commit need not
 * wait for the previous fsync to end before its own starts); callers beyond that share the next
 * one, so however many callers there are, at most maxRunning flushes run and one waits.
 * The default, 2, leaves libuv's other two pool threads to DNS and file reads.
 */
export function syncBarrier(flush: () => Promise<void>, maxRunning = 2): () => Promise<void> {
  let running = 0;
  let next: Deferred | undefined;

  function start(): void {
    const waiters = next;
    next = undefined;
    if (!waiters) return;
    running++;
    flush()
      .then(waiters.resolve, waiters.reject)
      .finally(() => {
        running--;
        start();
      });
  }

  return () => {
    next ??= deferred();
    const { promise } = next;
    if (running < maxRunning) start();
    return promise;
  };
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

function deferred(): Deferred {
  let resolve: () => void = () => {};
  let reject: (e: unknown) => void = () => {};
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
