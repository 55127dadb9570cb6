import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A real nats-server with JetStream (file storage) on a free loopback port, owned by one test file.
 * Never the machine's shared server on 4222: tests restart and kill theirs. `.ci/run` installs the
 * Debian package `nats-server` when it is missing; a machine without it fails loudly here (no skip).
 */
export interface NatsServer {
  /** nats://127.0.0.1:PORT */
  url: string;
  port: number;
  /** JetStream store directory (kept across restart). */
  storeDir: string;
  /** SIGTERM, wait for exit. */
  stop(): Promise<void>;
  /** SIGKILL, wait for exit (what a node loss looks like). */
  kill(): Promise<void>;
  /** Start again on the same port with the same store directory. */
  start(): Promise<void>;
  /**
   * SIGSTOP: the server keeps its sockets but reads and answers nothing (a hung server; what a lost
   * ack looks like to a client), until resume() (SIGCONT), when it processes what was sent meanwhile.
   */
  pause(): void;
  resume(): void;
  /** stop() and remove the store directory. */
  dispose(): Promise<void>;
}

export const NATS_SERVER_BIN = process.env.NATS_SERVER_BIN ?? (existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once the server answers with its INFO line (it accepts clients). */
async function waitForInfo(port: number, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect(port, '127.0.0.1');
      let buf = '';
      const done = (v: boolean) => {
        sock.destroy();
        resolve(v);
      };
      sock.setTimeout(500, () => done(false));
      sock.on('data', (d) => {
        buf += d.toString('utf8');
        if (buf.startsWith('INFO ')) done(true);
      });
      sock.on('error', () => done(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nats-server did not accept connections on port ${port} within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startNatsServer(opts: { extraArgs?: string[] } = {}): Promise<NatsServer> {
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), 'kfp-notify-nats-'));
  let child: ChildProcess | undefined;
  let output = '';

  async function start(): Promise<void> {
    const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir, ...(opts.extraArgs ?? [])];
    const proc = spawn(NATS_SERVER_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    proc.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-8192)));
    proc.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-8192)));
    const failed = new Promise<never>((_, reject) => {
      proc.once('error', (err) => reject(new Error(`cannot start ${NATS_SERVER_BIN} (install the Debian package nats-server): ${err.message}`)));
      proc.once('exit', (code) => reject(new Error(`nats-server exited with ${code} before accepting connections:\n${output}`)));
    });
    failed.catch(() => undefined);
    await Promise.race([waitForInfo(port, 10_000), failed]);
  }

  function signal(sig: NodeJS.Signals): Promise<void> {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill(sig);
    });
  }

  await start();
  const server: NatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
    start,
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    async dispose() {
      child?.kill('SIGCONT');
      await signal('SIGTERM');
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
  return server;
}
