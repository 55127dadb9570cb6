import { spawn, type ChildProcess } from 'node:child_process';
import { BIN } from '../../helpers/cli.js';

/** A running `kfp-notify callback` process (the compiled dist/), with its JSON log lines. */
export interface CallbackProcess {
  child: ChildProcess;
  url: string;
  lines: Record<string, unknown>[];
  stderr(): string;
  /** Sends the signal and resolves with the exit code (null when killed by the signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Without `cluster: true` the process runs with --no-cluster, whatever the machine's kubeconfig says. */
export async function startCallbackProcess(args: string[], env: NodeJS.ProcessEnv = {}, opts: { cluster?: boolean } = {}): Promise<CallbackProcess> {
  const child = spawn(process.execPath, [BIN, 'callback', '--port', '0', ...(opts.cluster ? [] : ['--no-cluster']), ...args], {
    env: { ...process.env, KUBERNETES_SERVICE_HOST: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let err = '';
  let partial = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`callback did not start: ${err}`)), 15_000);
    child.stdout?.on('data', (d: Buffer) => {
      partial += d.toString();
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      for (const p of parts) {
        try {
          const line = JSON.parse(p) as Record<string, unknown>;
          lines.push(line);
          if (line.msg === 'callback listening' && typeof line.url === 'string') {
            clearTimeout(timer);
            resolve(line.url);
          }
        } catch {
          // not a log line
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`callback exited with ${code}: ${err}`));
    });
  });
  return {
    child,
    url,
    lines,
    stderr: () => err,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
