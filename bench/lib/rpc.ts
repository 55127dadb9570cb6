/**
 * The child side of bench/lib/procs.ts: the config arrives as argv[2] (JSON), requests arrive over
 * the IPC channel, and the child exits when its parent goes away, so no orphan keeps a port or a core.
 */

export type Handlers = Record<string, (arg: unknown) => unknown>;

export function childConfig<T>(): T {
  const raw = process.argv[2];
  if (raw === undefined) throw new Error('this bench child expects its config as a JSON argument');
  return JSON.parse(raw) as T;
}

export function serveRpc(handlers: Handlers): void {
  if (!process.send) throw new Error('this bench child must be started with an IPC channel (bench/lib/procs.ts)');
  process.on('disconnect', () => process.exit(0));
  // An orderly exit, so that `node --cpu-prof` gets to write its profile.
  process.on('SIGTERM', () => process.exit(0));
  process.on('message', (m: unknown) => {
    const { id, method, arg } = m as { id: number; method: string; arg?: unknown };
    const handler = handlers[method];
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown method ${method}`);
        return handler(arg);
      })
      .then(
        (result) => process.send?.({ id, result: result ?? null }),
        (err: unknown) => process.send?.({ id, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
      );
  });
}
