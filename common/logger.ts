import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/**
 * Keys whose values are secrets, wherever a caller puts them: at the top of a log line's object or one
 * level down (`{ subscriber: { signingKeys } }`). Tokens, signing keys, the hook key and subscriber
 * headers must never reach a log line, whatever object a caller happens to log. A `headers` object one
 * level down (a request's, a subscriber's: they may carry an Authorization value) is blanked whole;
 * at the top, only its credentials.
 */
const SECRET_KEYS = new Set(['token', 'secret', 'signingKey', 'signingKeys', 'hookKey', 'authorization', 'Authorization', 'webhook-signature']);
const CREDENTIAL_HEADERS = ['authorization', 'Authorization', 'webhook-signature'];
export const CENSOR = '[redacted]';

type Fields = Record<string, unknown>;
// Errors are left to pino's err serializer: copying one would drop its message and stack.
const isFields = (v: unknown): v is Fields => typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v) && !(v instanceof Error);

function censorKeys(o: Fields, secret: (key: string) => boolean): Fields {
  let out: Fields | undefined;
  for (const key of Object.keys(o)) {
    if (!secret(key)) continue;
    out ??= { ...o };
    out[key] = CENSOR;
  }
  return out ?? o;
}

const nestedSecret = (key: string): boolean => SECRET_KEYS.has(key) || key === 'headers';
const headerSecret = (key: string): boolean => CREDENTIAL_HEADERS.includes(key);

/**
 * A log line's object with its secrets blanked; the object itself when it holds none (the common case
 * costs a key lookup per field). Used as pino's log and bindings formatter instead of pino's `redact`,
 * which for wildcard paths runs a redactor over every field of every line (~25 µs of a ~400 µs
 * admission, measured in the webhook under load).
 */
export function redactSecrets(obj: Fields): Fields {
  let out: Fields | undefined;
  for (const key of Object.keys(obj)) {
    const v = obj[key];
    let next: unknown = v;
    if (SECRET_KEYS.has(key)) next = CENSOR;
    else if (isFields(v)) next = censorKeys(v, key === 'headers' ? headerSecret : nestedSecret);
    if (next === v) continue;
    out ??= { ...obj };
    out[key] = next;
  }
  return out ?? obj;
}

export interface LoggerOptions {
  level?: string;
  name?: string;
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const options = {
    level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
    name: opts.name ?? 'kfp-notify',
    formatters: { log: redactSecrets, bindings: redactSecrets },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  // The process's own stdout gets an asynchronous writer: a synchronous write per log line costs a
  // busy server a large share of its CPU. pino flushes it on a normal exit; a SIGKILL can lose the
  // last few lines, never an event (events live in the store, not in the logs).
  const destination = opts.destination === undefined || opts.destination === process.stdout ? pino.destination({ dest: 1, sync: false }) : opts.destination;
  return redactChildBindings(pino(options, destination));
}

/**
 * pino applies the bindings formatter to the root's bindings only, never to a child's: a child's
 * bindings are blanked here before pino sees them. Children inherit this `child` from the root (pino
 * creates them with Object.create), so grandchildren are covered too.
 */
function redactChildBindings(root: Logger): Logger {
  const child = root.child;
  root.child = function redactedChild(this: Logger, bindings, options) {
    return child.call(this, redactSecrets(bindings), options);
  } as Logger['child'];
  return root;
}

/** A logger that writes nothing: for tests and for CLI paths whose stdout is data. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
