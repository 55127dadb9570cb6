import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../common/logger.js';
import type { InjectOptions } from './inject/options.js';
import { errorMessage } from '../common/error-message.js';
import { failedOpenText, type Admission } from './admit.js';

/**
 * Admissions on worker threads. Parsing a review and injecting its Workflow is all CPU; on the event
 * loop it competes with TLS, HTTP and the probes, and a synchronous injector cannot be cut off when it
 * overruns. Here the route hands the body text to a worker (webhook/admit-worker.ts) and awaits a
 * message, so:
 * - the event loop only moves bytes, and the parse and the injection run on another core;
 * - the time budget holds whatever the injector does: past it the apiserver gets an allowed, unpatched
 *   answer, and a worker that has answered nothing for a whole budget is replaced;
 * - a worker that dies fails open what it held and is replaced; while none is running, admissions run
 *   on the event loop as with `--inject-threads 0`. Nothing here ever blocks a submission.
 */

export interface WorkerConfig {
  budgetMs: number;
}

export type ToWorker = { type: 'options'; options: InjectOptions } | { type: 'admit'; id: number; text: string; bodyBytes: number | undefined };
/** `ready`: the worker's modules loaded (a thread can be 'online' and still fail to load them). */
export type FromWorker = { type: 'ready' } | { type: 'admission'; id: number; admission: Admission };

export interface AdmitPoolOptions {
  threads: number;
  budgetMs: number;
  /** Read per admission; a worker is sent the options again whenever this returns a new object. */
  getInjectOptions: () => InjectOptions;
  /** When no worker is running (all starting or restarting): admit on the event loop. */
  inline: (text: string, bodyBytes: number | undefined) => Promise<Admission>;
  logger: Logger;
  onRestart?: (reason: 'exit' | 'stuck') => void;
  /** The compiled worker script (default: admit-worker.js beside this module). */
  workerUrl?: URL;
}

export interface AdmitPool {
  admit(text: string, bodyBytes: number | undefined): Promise<Admission>;
  /** How many workers are running now. */
  running(): number;
  /** Resolves once every worker has come online or failed its first start (then admissions run inline). */
  started(): Promise<void>;
  close(): Promise<void>;
}

interface Pending {
  text: string;
  deadline: number;
  resolve: (a: Admission) => void;
}

interface Slot {
  index: number;
  worker?: Worker;
  online: boolean;
  /** In dispatch order, which is the order the worker answers in. */
  pending: Map<number, Pending>;
  sentOptions?: InjectOptions;
  /** When the worker last answered, or was handed work while idle. */
  progressAt: number;
  restartTimer?: NodeJS.Timeout;
  /** Settles the slot's first start, online or not. */
  firstStart?: () => void;
  /** Exits in a row without ever becoming ready: the restart delay doubles with each. */
  failedStarts: number;
}

const RESTART_DELAY_MS = 1000;
const MAX_RESTART_DELAY_MS = 60_000;

export function startAdmitPool(opts: AdmitPoolOptions): AdmitPool {
  if (!Number.isSafeInteger(opts.threads) || opts.threads < 1) throw new Error(`inject threads must be a whole number ≥ 1, got ${opts.threads}`);
  const workerUrl = opts.workerUrl ?? new URL('./admit-worker.js', import.meta.url);
  const slots: Slot[] = Array.from({ length: opts.threads }, (_, index) => ({ index, online: false, pending: new Map(), progressAt: 0, failedStarts: 0 }));
  let nextId = 0;
  let closing = false;

  function settleAll(slot: Slot, cause: 'timeout' | 'error', err?: string): void {
    const pending = [...slot.pending.values()];
    slot.pending.clear();
    for (const p of pending) p.resolve(failedOpenText(p.text, cause, opts.budgetMs, err));
  }

  function spawn(slot: Slot): void {
    slot.restartTimer = undefined;
    slot.online = false;
    slot.sentOptions = undefined;
    const worker = new Worker(workerUrl, { workerData: { budgetMs: opts.budgetMs } satisfies WorkerConfig });
    slot.worker = worker;
    // The webhook's life is its server's: a worker alone never keeps the process running.
    worker.unref();
    worker.on('message', (msg: FromWorker) => {
      if (msg.type === 'ready') {
        slot.online = true;
        slot.failedStarts = 0;
        slot.firstStart?.();
        return;
      }
      slot.progressAt = performance.now();
      const p = slot.pending.get(msg.id);
      if (!p) return; // answered already (failed open past the budget): the late answer is dropped
      slot.pending.delete(msg.id);
      p.resolve(msg.admission);
    });
    worker.on('error', (err) => opts.logger.error({ worker: slot.index, err: errorMessage(err) }, 'inject worker failed'));
    worker.on('exit', (code) => {
      if (slot.worker !== worker) return; // replaced already
      if (!slot.online) slot.failedStarts++;
      slot.worker = undefined;
      slot.online = false;
      slot.firstStart?.();
      settleAll(slot, 'error', `inject worker exited (code ${code})`);
      if (closing) return;
      // A delay, so that a worker that cannot start does not spin; meanwhile admissions run inline.
      const delay = Math.min(MAX_RESTART_DELAY_MS, RESTART_DELAY_MS * 2 ** Math.max(0, slot.failedStarts - 1));
      opts.logger.warn({ worker: slot.index, code, restartInMs: delay }, 'inject worker exited; restarting it');
      opts.onRestart?.('exit');
      slot.restartTimer = setTimeout(() => spawn(slot), delay);
    });
  }

  // One timer for the whole pool (not one per admission): answers past the budget fail open, and a
  // worker that has answered nothing for a whole budget while holding work is stuck and replaced.
  const tickMs = Math.max(5, Math.min(100, Math.floor(opts.budgetMs / 5)));
  const ticker = setInterval(() => {
    const now = performance.now();
    for (const slot of slots) {
      if (slot.pending.size === 0) continue;
      if (slot.worker && now - slot.progressAt > opts.budgetMs) {
        const stuck = slot.worker;
        slot.worker = undefined;
        slot.online = false;
        settleAll(slot, 'timeout');
        opts.logger.error({ worker: slot.index, budgetMs: opts.budgetMs }, 'inject worker answered nothing within the time budget; replacing it');
        opts.onRestart?.('stuck');
        void stuck.terminate();
        spawn(slot);
        continue;
      }
      for (const [id, p] of slot.pending) {
        if (p.deadline > now) break; // in dispatch order: the rest are younger
        slot.pending.delete(id);
        p.resolve(failedOpenText(p.text, 'timeout', opts.budgetMs));
      }
    }
  }, tickMs);
  ticker.unref();

  const started = Promise.all(
    slots.map(
      (slot) =>
        new Promise<void>((resolve) => {
          slot.firstStart = () => {
            slot.firstStart = undefined;
            resolve();
          };
        }),
    ),
  ).then(() => undefined);
  for (const slot of slots) spawn(slot);

  function leastBusy(): Slot | undefined {
    let best: Slot | undefined;
    for (const slot of slots) {
      if (!slot.online || !slot.worker) continue;
      if (!best || slot.pending.size < best.pending.size) best = slot;
    }
    return best;
  }

  return {
    admit(text, bodyBytes) {
      const slot = leastBusy();
      if (!slot?.worker) return opts.inline(text, bodyBytes);
      let options: InjectOptions;
      try {
        options = opts.getInjectOptions();
      } catch (err) {
        return Promise.resolve(failedOpenText(text, 'error', opts.budgetMs, errorMessage(err)));
      }
      if (slot.sentOptions !== options) {
        slot.worker.postMessage({ type: 'options', options } satisfies ToWorker);
        slot.sentOptions = options;
      }
      const id = nextId++;
      const now = performance.now();
      if (slot.pending.size === 0) slot.progressAt = now;
      return new Promise<Admission>((resolve) => {
        slot.pending.set(id, { text, deadline: now + opts.budgetMs, resolve });
        slot.worker?.postMessage({ type: 'admit', id, text, bodyBytes } satisfies ToWorker);
      });
    },
    running: () => slots.filter((s) => s.online).length,
    started: () => started,
    async close() {
      closing = true;
      clearInterval(ticker);
      await Promise.all(
        slots.map(async (slot) => {
          clearTimeout(slot.restartTimer);
          slot.firstStart?.();
          const worker = slot.worker;
          slot.worker = undefined;
          settleAll(slot, 'error', 'the webhook is stopping');
          await worker?.terminate();
        }),
      );
    },
  };
}
