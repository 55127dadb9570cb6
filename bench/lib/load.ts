import { startRpcChild, type Proc } from './procs.js';

/**
 * Load from a separate process: autocannon, driven through its API in a child (bench/servers/load.ts)
 * so that every response time is kept at full precision. (autocannon's own histogram stores whole
 * milliseconds, too coarse for sub-millisecond baselines.)
 */

export interface LoadSpec {
  url: string;
  method: 'POST' | 'GET';
  body?: string;
  headers?: Record<string, string>;
  connections: number;
  durationS: number;
  /** Stop after this many requests instead of after `durationS`. */
  amount?: number;
  /** autocannon replaces `[<id>]` in the body with a fresh id per request. */
  idReplacement?: boolean;
}

export interface LoadResult {
  /** 2xx responses. */
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  durationS: number;
  /** 2xx responses per second. */
  rps: number;
  /** Of 2xx responses, milliseconds. */
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  statusCodes: Record<string, number>;
}

export interface LoadGenerator {
  run(spec: LoadSpec): Promise<LoadResult>;
  proc: Proc;
  stop(): Promise<void>;
}

export async function startLoadGenerator(): Promise<LoadGenerator> {
  const { proc } = await startRpcChild('servers/load.js', {}, { name: 'autocannon' });
  return {
    proc,
    run: (spec) => proc.call<LoadResult>('run', spec),
    stop: () => proc.stop(),
  };
}

/** A load result that is not all 2xx means the bench measured errors, not the product: stop there. */
export function assertAllOk(what: string, r: LoadResult): LoadResult {
  if (r.ok === 0 || r.non2xx > 0 || r.errors > 0 || r.timeouts > 0) {
    throw new Error(`${what}: ${r.ok} ok, ${r.non2xx} non-2xx ${JSON.stringify(r.statusCodes)}, ${r.errors} errors, ${r.timeouts} timeouts`);
  }
  return r;
}
