import autocannon from 'autocannon';
import type { LoadResult, LoadSpec } from '../lib/load.js';
import { serveRpc } from '../lib/rpc.js';
import { quantile } from '../lib/stats.js';

function run(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const latencies: number[] = [];
    const instance = autocannon(
      {
        url: spec.url,
        method: spec.method,
        ...(spec.body !== undefined ? { body: spec.body } : {}),
        headers: spec.headers ?? {},
        connections: spec.connections,
        ...(spec.amount !== undefined ? { amount: spec.amount } : { duration: spec.durationS }),
        idReplacement: spec.idReplacement ?? false,
        timeout: 30,
      },
      (err, r) => {
        if (err) return reject(err);
        const statusCodes = Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).map(([k, v]) => [k, v.count]));
        const mean = latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length);
        resolve({
          ok: r['2xx'],
          non2xx: r.non2xx,
          errors: r.errors,
          timeouts: r.timeouts,
          durationS: r.duration,
          rps: r['2xx'] / r.duration,
          latencyMs: {
            p50: quantile(latencies, 0.5),
            p90: quantile(latencies, 0.9),
            p99: quantile(latencies, 0.99),
            max: latencies.reduce((a, b) => (a > b ? a : b), -Infinity),
            mean,
          },
          statusCodes,
        });
      },
    );
    instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
      if (status >= 200 && status < 300) latencies.push(ms);
    });
  });
}

serveRpc({ ready: () => ({ pid: process.pid }), run: (spec) => run(spec as LoadSpec) });
