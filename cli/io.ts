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

/** node:util's parseArgs, with its errors (unknown flag, missing value) turned into UsageErrors. */
export function strictParse<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
}
