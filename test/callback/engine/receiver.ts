import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request a test subscriber received. */
export interface Received {
  /** 1 for the first request this receiver saw. */
  n: number;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** performance.now() when the body was complete. */
  at: number;
}

/** How a test subscriber answers request n: write to res (or leave it hanging, or destroy req.socket). */
export type Respond = (got: Received, res: ServerResponse, req: IncomingMessage) => void;

export interface Receiver {
  url: string;
  received: Received[];
  close(): Promise<void>;
}

export const answer =
  (status: number, headers: Record<string, string> = {}): Respond =>
  (_got, res) => {
    res.writeHead(status, headers).end(status >= 400 ? `status ${status}` : '');
  };

/** A real HTTP subscriber on 127.0.0.1 (port 0) that records what it gets. */
export async function startReceiver(respond: Respond = answer(204)): Promise<Receiver> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const got: Received = { n: received.length + 1, url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: performance.now() };
      received.push(got);
      respond(got, res, req);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Polls cond until it holds (tests only; the product never polls). */
export async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
