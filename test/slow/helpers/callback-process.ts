import { spawn, type ChildProcess } from 'node:child_process';
import { BIN } from '../../helpers/cli.js';

/**
 * `kfp-notify callback` as a real process (the compiled dist/), keeping every byte it writes.
 * test/callback/engine/process.ts keeps only the JSON lines it could parse; the secret checks need
 * the raw stream (a secret in a stack trace on stderr, or in a line that is not JSON, counts too).
 * Every process a test file starts is remembered, so `killAll` can end them in afterEach/afterAll
 * whatever the test did, and `everyOutput` can be searched for secrets at the end of the file.
 */

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface CallbackProcess {
  child: ChildProcess;
  /** The base URL from the `callback listening` log line. */
  url: string;
  /** Parsed JSON log lines so far. */
  lines: Record<string, unknown>[];
  /** stdout and stderr so far, as written. */
  output(): string;
  exited: Promise<Exit>;
  /** Sends the signal (if still running) and resolves when the process is gone. */
  stop(signal?: NodeJS.Signals): Promise<Exit>;
}

const live = new Set<ChildProcess>();
const outputs: (() => string)[] = [];

/** Everything every process started by this test file wrote (callback and CLI runs alike). */
export function everyOutput(): string {
  return outputs.map((o) => o()).join('\n');
}

/** Adds the output of a process started elsewhere (e.g. runCli) to what `everyOutput` searches. */
export function recordOutput(text: string): void {
  outputs.push(() => text);
}

/** SIGKILLs every process this file started that is still running, and waits for each to go. */
export async function killAll(): Promise<void> {
  await Promise.all(
    [...live].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
  live.clear();
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  /** Talk to the Kubernetes API from $KUBECONFIG (default: --no-cluster). */
  cluster?: boolean;
  startTimeoutMs?: number;
}

/** Starts `kfp-notify callback --port 0 <args>` and resolves once it listens. */
export async function startCallbackProcess(args: string[], opts: StartOptions = {}): Promise<CallbackProcess> {
  // KUBERNETES_SERVICE_HOST cleared: the machine running the tests may itself be a pod. LOG_LEVEL
  // dropped: the secret checks need the default (info) level or what the test asks for.
  const env: NodeJS.ProcessEnv = { ...process.env, KUBERNETES_SERVICE_HOST: '', ...opts.env };
  if (opts.env?.LOG_LEVEL === undefined) delete env.LOG_LEVEL;
  const child = spawn(process.execPath, [BIN, 'callback', '--port', '0', ...(opts.cluster ? [] : ['--no-cluster']), ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let raw = '';
  let partial = '';
  const lines: Record<string, unknown>[] = [];
  outputs.push(() => raw);
  const exited = new Promise<Exit>((resolve) =>
    child.on('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  child.stderr?.on('data', (d: Buffer) => (raw += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`callback did not start within the time allowed:\n${raw}`)), opts.startTimeoutMs ?? 20_000);
    child.stdout?.on('data', (d: Buffer) => {
      const text = d.toString();
      raw += text;
      partial += text;
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      for (const p of parts) {
        let line: Record<string, unknown>;
        try {
          line = JSON.parse(p) as Record<string, unknown>;
        } catch {
          continue; // not a log line; still in `raw`
        }
        lines.push(line);
        if (line.msg === 'callback listening' && typeof line.url === 'string') {
          clearTimeout(timer);
          resolve(line.url);
        }
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`callback exited (${code ?? signal}) before listening:\n${raw}`));
    });
  });
  return {
    child,
    url,
    lines,
    output: () => raw,
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
