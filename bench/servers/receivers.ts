import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { childConfig, serveRpc } from '../lib/rpc.js';

/**
 * Subscribers for the delivery benches: `count` HTTP servers on 127.0.0.1 in one process (not the
 * process under test), each answering 204 as soon as the body is in, or after `stallMs` for the ones
 * listed in `stalled`. With `record`, each keeps (webhook-id, arrival time) pairs; times are
 * performance.timeOrigin + performance.now(), comparable across processes on one machine.
 */

export interface ReceiversConfig {
  count: number;
  record?: boolean;
}

export interface ReceiversReady {
  urls: string[];
}

/** Arrivals per receiver: [webhook-id, epoch ms] pairs. */
export type Arrivals = [string, number][][];

const cfg = childConfig<ReceiversConfig>();
const received: number[] = new Array<number>(cfg.count).fill(0);
let arrivals: Arrivals = Array.from({ length: cfg.count }, () => []);
const stallMs: number[] = new Array<number>(cfg.count).fill(0);
const held = new Set<{ res: ServerResponse; timer: NodeJS.Timeout }>();

const now = () => performance.timeOrigin + performance.now();

function receiver(i: number): Server {
  return createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume();
    req.on('end', () => {
      received[i] = (received[i] ?? 0) + 1;
      if (cfg.record) arrivals[i]?.push([String(req.headers['webhook-id'] ?? ''), now()]);
      const stall = stallMs[i] ?? 0;
      if (stall <= 0) return void res.writeHead(204).end();
      const entry = {
        res,
        timer: setTimeout(() => {
          held.delete(entry);
          res.writeHead(204).end();
        }, stall),
      };
      held.add(entry);
    });
  });
}

const servers = Array.from({ length: cfg.count }, (_, i) => receiver(i));
await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))));
const urls = servers.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}/hook`);

serveRpc({
  ready: (): ReceiversReady => ({ urls }),
  received: () => received,
  arrivals: () => arrivals,
  /** Forget counts and arrivals, answer every held request now, and set the stalls for the next run. */
  reset: (arg) => {
    const stalls = (arg ?? {}) as Record<string, number>;
    for (const h of held) {
      clearTimeout(h.timer);
      h.res.writeHead(204).end();
    }
    held.clear();
    received.fill(0);
    arrivals = Array.from({ length: cfg.count }, () => []);
    stallMs.fill(0);
    for (const [i, ms] of Object.entries(stalls)) stallMs[Number(i)] = ms;
    return { held: 0 };
  },
  held: () => held.size,
});
