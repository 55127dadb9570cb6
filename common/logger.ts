import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/**
 * Paths pino blanks out wherever they appear. Tokens, signing keys and subscriber headers are
 * secrets; they must never reach a log line, whatever object a caller happens to log.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["webhook-signature"]',
  'headers.authorization',
  'headers["webhook-signature"]',
  '*.authorization',
  '*.Authorization',
  'token',
  '*.token',
  'secret',
  '*.secret',
  'signingKey',
  '*.signingKey',
  'hookKey',
  '*.hookKey',
  // A Subscriber holds its resolved signing secrets and headers (which may carry an Authorization value).
  'signingKeys',
  '*.signingKeys',
  '*.headers',
];

export interface LoggerOptions {
  level?: string;
  name?: string;
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const options = {
    level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
    name: opts.name ?? 'kfp-notify',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  // The process's own stdout gets an asynchronous writer: a synchronous write per log line costs a
  // busy server a large share of its CPU. pino flushes it on a normal exit; a SIGKILL can lose the
  // last few lines, never an event (events live in the store, not in the logs).
  const destination = opts.destination === undefined || opts.destination === process.stdout ? pino.destination({ dest: 1, sync: false }) : opts.destination;
  return pino(options, destination);
}

/** A logger that writes nothing: for tests and for CLI paths whose stdout is data. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
