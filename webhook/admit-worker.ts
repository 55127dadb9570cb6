import { parentPort, workerData } from 'node:worker_threads';
import type { InjectOptions } from './inject/options.js';
import { admitText, realInjector } from './admit.js';
import type { ToWorker, FromWorker, WorkerConfig } from './admit-pool.js';

/**
 * An inject worker thread: admits the bodies webhook/admit-pool.ts sends it, one at a time, with the
 * options it was last sent, and posts each answer back. It does no I/O and keeps no other state.
 */

const port = parentPort;
if (!port) throw new Error('admit-worker.js runs as a worker thread (see webhook/admit-pool.ts)');
const { budgetMs } = workerData as WorkerConfig;

let options: InjectOptions | undefined;

// Structured cloning turns the hook key's Buffer into a plain Uint8Array; the injector wants a Buffer.
function revive(o: InjectOptions): InjectOptions {
  const s = o.hookKey.secret as Uint8Array;
  return { ...o, hookKey: { ...o.hookKey, secret: Buffer.from(s.buffer, s.byteOffset, s.byteLength) } };
}

const getInjectOptions = (): InjectOptions => {
  if (!options) throw new Error('the inject worker has no options yet');
  return options;
};

port.on('message', (msg: ToWorker) => {
  if (msg.type === 'options') {
    options = revive(msg.options);
    return;
  }
  void admitText(msg.text, msg.bodyBytes, { inject: realInjector, getInjectOptions, budgetMs }).then((admission) => {
    port.postMessage({ type: 'admission', id: msg.id, admission } satisfies FromWorker);
  });
});
port.postMessage({ type: 'ready' } satisfies FromWorker);
