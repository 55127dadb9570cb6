import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Child processes of a bench: servers under test, load generators, receivers. Each is a separate
 * Node process so the process measured does nothing else. Every child is tracked and killed when the
 * bench exits, however it exits, and a whole bench has a deadline: no script can hang a machine.
 */

export interface Proc {
  child: ChildProcess;
  pid: number;
  /** Where its stdout and stderr go. */
  logFile: string;
  /** Resolves with the first JSON log line `pick` accepts. */
  waitForLog<T>(pick: (line: Record<string, unknown>) => T | undefined, timeoutMs?: number): Promise<T>;
  /** One request to a child that runs `serveRpc` (bench/lib/rpc.ts). */
  call<T>(method: string, arg?: unknown): Promise<T>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

const live = new Set<ChildProcess>();
let workDir: string | undefined;

function killAll(): void {
  for (const c of live) c.kill('SIGKILL');
  live.clear();
  if (workDir && !process.env.KFP_NOTIFY_BENCH_KEEP) rmSync(workDir, { recursive: true, force: true });
}

process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

/** A scratch directory for this bench run (SQLite files, certificates, logs); removed at exit. */
export function benchDir(): string {
  workDir ??= mkdtempSync(join(tmpdir(), 'kfp-notify-bench-'));
  return workDir;
}

/** Ends the whole bench (and its children) if it runs past `ms`: a hung server must not hang the script. */
export function deadline(ms: number, what: string): void {
  setTimeout(() => {
    process.stderr.write(`${what}: still running after ${Math.round(ms / 1000)} s; stopping\n`);
    process.exit(1);
  }, ms).unref();
}

/** The compiled bench script next to this one: `script('servers/receivers.js')`. */
export function script(rel: string): string {
  return fileURLToPath(new URL(`../${rel}`, import.meta.url));
}

let seq = 0;

/**
 * `KFP_NOTIFY_BENCH_CPU_PROF=<dir>` runs the processes under test with `node --cpu-prof`, writing one
 * .cpuprofile per process into <dir> when it exits (open them in Chrome DevTools, Performance tab).
 */
export function profiled(): string[] {
  const dir = process.env.KFP_NOTIFY_BENCH_CPU_PROF;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

export function startNode(file: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; nodeArgs?: readonly string[]; name?: string } = {}): Proc {
  const logFile = join(benchDir(), `${opts.name ?? 'child'}-${++seq}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), file, ...args], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', fd, fd, 'ipc'],
  });
  closeSync(fd);
  live.add(child);
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      live.delete(child);
      resolve(code);
    }),
  );
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let ids = 0;
  child.on('message', (m: unknown) => {
    const msg = m as { id?: number; result?: unknown; error?: string };
    const p = msg.id !== undefined ? pending.get(msg.id) : undefined;
    if (!p) return;
    pending.delete(msg.id!);
    if (msg.error !== undefined) p.reject(new Error(msg.error));
    else p.resolve(msg.result);
  });
  void exited.then((code) => {
    for (const p of pending.values()) p.reject(new Error(`${file} exited (${code}) before answering; see ${logFile}`));
    pending.clear();
  });

  return {
    child,
    pid: child.pid ?? -1,
    logFile,
    exited,
    async waitForLog(pick, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      let done = false;
      void exited.then(() => (done = true));
      for (;;) {
        for (const line of readFileSync(logFile, 'utf8').split('\n')) {
          if (!line.startsWith('{')) continue;
          let parsed: Record<string, unknown>;
          try {
            parsed = JSON.parse(line) as Record<string, unknown>;
          } catch {
            continue;
          }
          const hit = pick(parsed);
          if (hit !== undefined) return hit;
        }
        if (done || Date.now() > until) throw new Error(`${file}: the expected log line did not come; see ${logFile}:\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    call<T>(method: string, arg?: unknown) {
      return new Promise<T>((resolve, reject) => {
        if (!child.connected) return reject(new Error(`${file} is not running; see ${logFile}`));
        const id = ++ids;
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        child.send({ id, method, arg });
      });
    },
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A child that answers `call`s: start it, then wait for its `ready` answer (its URLs, ports...). */
export async function startRpcChild<R>(rel: string, config: unknown, opts: { name?: string; nodeArgs?: readonly string[] } = {}): Promise<{ proc: Proc; ready: R }> {
  const proc = startNode(script(rel), [JSON.stringify(config)], opts);
  const ready = await proc.call<R>('ready');
  return { proc, ready };
}

export interface MemoryStatus {
  /** Resident set size now, MiB. */
  rssMiB: number;
  /** Peak resident set size since the process started, MiB. */
  peakMiB: number;
}

/** VmRSS and VmHWM of a process (Linux /proc): what the kernel charges it, as a container limit sees. */
export function memoryOf(pid: number): MemoryStatus {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 };
}
