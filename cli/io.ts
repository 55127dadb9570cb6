import type { Readable, Writable } from 'node:stream';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { errorMessage } from '../common/error-message.js';

/** What a command touches of the outside world, so tests can run commands in-process. */
export interface CliIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
}

export interface Command {
  name: string;
  summary: string;
  /** Resolves to the process exit code: 0 ok, 1 runtime failure, 2 bad usage or bad input. */
  run(args: string[], io: CliIo): Promise<number>;
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export function processIo(): CliIo {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };
}

export async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** A usage error: the command prints `kfp-notify <cmd>: <message>` and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * The opening every command shares: parse the flags; on `--help` print the usage (exit 0); on a
 * UsageError print `kfp-notify <command>: <why>` and the usage (exit 2). Other errors propagate.
 */
export function parseOrExit<T>(command: string, usage: string, io: CliIo, parse: () => T | 'help'): { flags: T } | { exit: number } {
  let parsed: T | 'help';
  try {
    parsed = parse();
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`kfp-notify ${command}: ${err.message}\n\n${usage}`);
    return { exit: EXIT_USAGE };
  }
  if (parsed === 'help') {
    io.stdout.write(usage);
    return { exit: EXIT_OK };
  }
  return { flags: parsed };
}

/**
 * node:util's parseArgs, with its errors turned into UsageErrors in one wording for every command
 * (Node's own text differs with allowPositionals and talks about '--' escapes).
 */
export function strictParse<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (err) {
    throw new UsageError(parseArgsMessage(err));
  }
}

function parseArgsMessage(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  const message = errorMessage(err);
  const quoted = /'([^']+)'/.exec(message)?.[1] ?? '';
  const flag = quoted.split(' ')[0] ?? quoted;
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${flag}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return message.includes('does not take') ? `${flag} takes no value` : `${flag} needs a value`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument "${quoted}"`;
    default:
      return message;
  }
}

/** The levels every long-running command accepts (pino's), in the order --help lists them. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const LOG_LEVEL_HELP = `${LOG_LEVELS.slice(0, -1).join(', ')} or ${LOG_LEVELS.at(-1)}`;

export function logLevelFlag(value: string, flag = '--log-level'): string {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) throw new UsageError(`${flag} must be one of ${LOG_LEVEL_HELP}, got "${value}"`);
  return value;
}

/** A port flag, named as the user typed it (`serve --callback-port` is checked as itself, not as `--port`). */
export function portFlag(value: string, flag: string): number {
  const port = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(port >= 0 && port <= 65535)) throw new UsageError(`${flag} must be a whole number from 0 to 65535, got "${value}"`);
  return port;
}

/** Rows as left-aligned columns two spaces apart, a header first (what kubectl get prints). */
export function textTable(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((c) => (c[i] ?? '').length)));
  return [head, ...rows].map((line) => line.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n') + '\n';
}
