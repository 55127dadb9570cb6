import { Registry, collectDefaultMetrics } from 'prom-client';
import { resolveDataDir } from '../common/data-dir.js';
import { createLogger } from '../common/logger.js';
import { SETTING_FLAGS, checkSettings, describeOptions, watchInjectOptions, type InjectOptionsSource } from '../webhook/injector-config.js';
import { webhookMetrics } from '../webhook/metrics.js';
import { startWebhookServer } from '../webhook/server.js';
import { readCertPair } from '../webhook/tls-reload.js';
import { DataDirError } from '../common/data-dir.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, LOG_LEVEL_HELP, UsageError, logLevelFlag, parseOrExit, portFlag, type CliIo, type Command, strictParse } from './io.js';
import { errorMessage } from '../common/error-message.js';

const USAGE = `Usage: kfp-notify webhook --port N --tls-cert FILE --tls-key FILE [options]

Runs the mutating admission webhook: POST /mutate (HTTPS), /healthz, /readyz, /metrics.
Logs are JSON lines on stdout. SIGTERM or SIGINT stops it gracefully.

Required:
  --port N               port to listen on (0 picks a free one; the log line "webhook listening" says which)
  --tls-cert FILE        PEM certificate (chain); re-read when the file changes
  --tls-key FILE         PEM private key; re-read when the file changes

Options:
  --host H               address to bind (default 0.0.0.0)
  --config FILE          injector settings (YAML: callbackUrl, argoVersion, mode, sizeLimitBytes, image,
                         stepHooks);
                         re-read when the file changes
  --callback-url URL     overrides callbackUrl
  --argo-version X       overrides argoVersion (the Argo version the cluster runs, e.g. 4.0.5)
  --mode container|http  overrides mode
  --size-limit BYTES     overrides sizeLimitBytes
  --step-hooks P         overrides stepHooks: all | failed | none, which step outcomes an exit hook reports
                         (default: failed on Argo >= 3.4, else none; see docs/injector.md)
  --hook-key-file F      hook keys, one per line, the first signs (default: <data dir>/hook-key)
  --data-dir D           local data dir (default ./.kfp-notify or $KFP_NOTIFY_DATA_DIR)
  --inject-threads N     worker threads that parse and inject admissions (default 0: on the event
                         loop). With threads the 2 s time budget holds whatever the injector does, and
                         a busy webhook admits more per second; each admission pays a thread hop
  --log-level L          ${LOG_LEVEL_HELP} (default info or $LOG_LEVEL)
  -h, --help             show this help
`;

// On the event loop by default: measured (docs/benchmarks.md), a thread raises a saturated webhook's
// throughput by a quarter but adds a hop to every admission and a longer latency tail; KFP creates
// runs a few at a time, where latency is what the apiserver waits for.
const DEFAULT_INJECT_THREADS = 0;
const MAX_INJECT_THREADS = 16;

const OPTIONS = {
  port: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  host: { type: 'string', default: '0.0.0.0' },
  config: { type: 'string' },
  'callback-url': { type: 'string' },
  'argo-version': { type: 'string' },
  mode: { type: 'string' },
  'size-limit': { type: 'string' },
  'step-hooks': { type: 'string' },
  'hook-key-file': { type: 'string' },
  'data-dir': { type: 'string' },
  'log-level': { type: 'string' },
  'inject-threads': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

interface WebhookFlags {
  port: number;
  certFile: string;
  keyFile: string;
  host: string;
  configFile?: string;
  hookKeyFile?: string;
  dataDir: string;
  logLevel: string;
  injectThreads: number;
  settings: ReturnType<typeof checkSettings>;
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`${flag} is required`);
  return value;
}

/** argv → checked flags, or a UsageError naming the flag. */
export function parseWebhookFlags(args: string[], env: NodeJS.ProcessEnv): WebhookFlags | 'help' {
  const { values } = strictParse({ args, options: OPTIONS, strict: true, allowPositionals: false });
  if (values.help) return 'help';
  const port = portFlag(required(values.port, '--port'), '--port');
  const logLevel = logLevelFlag(values['log-level'] ?? env.LOG_LEVEL ?? 'info');
  const threadsText = values['inject-threads'] ?? String(DEFAULT_INJECT_THREADS);
  const injectThreads = /^\d{1,2}$/.test(threadsText) ? Number(threadsText) : NaN;
  if (!(injectThreads >= 0 && injectThreads <= MAX_INJECT_THREADS)) {
    throw new UsageError(`--inject-threads must be a whole number from 0 to ${MAX_INJECT_THREADS}, got "${threadsText}"`);
  }
  let settings;
  try {
    settings = checkSettings(
      { callbackUrl: values['callback-url'], argoVersion: values['argo-version'], mode: values.mode, sizeLimitBytes: values['size-limit'], stepHooks: values['step-hooks'] },
      (key) => (key in SETTING_FLAGS ? SETTING_FLAGS[key as keyof typeof SETTING_FLAGS] : undefined) ?? key,
    );
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
  return {
    port,
    certFile: required(values['tls-cert'], '--tls-cert'),
    keyFile: required(values['tls-key'], '--tls-key'),
    host: values.host,
    configFile: values.config,
    hookKeyFile: values['hook-key-file'],
    dataDir: resolveDataDir(values['data-dir']),
    logLevel,
    injectThreads,
    settings,
  };
}

/** The first SIGTERM or SIGINT; `cancel` unhooks both (startup failed). */
function stopSignal(): { received: Promise<NodeJS.Signals>; cancel: () => void } {
  let on: (sig: NodeJS.Signals) => void = () => undefined;
  const cancel = (): void => {
    process.off('SIGTERM', on);
    process.off('SIGINT', on);
  };
  const received = new Promise<NodeJS.Signals>((resolve) => {
    on = (sig) => {
      cancel();
      resolve(sig);
    };
  });
  process.on('SIGTERM', on);
  process.on('SIGINT', on);
  return { received, cancel };
}

async function run(args: string[], io: CliIo): Promise<number> {
  const fail = (message: string, code: number): number => {
    io.stderr.write(`kfp-notify webhook: ${message}\n`);
    return code;
  };
  const parsed = parseOrExit('webhook', USAGE, io, () => parseWebhookFlags(args, io.env));
  if ('exit' in parsed) return parsed.exit;
  const flags = parsed.flags;
  let options: InjectOptionsSource;
  try {
    // Bad certificate files are bad input (exit 2), found before anything listens.
    readCertPair(flags.certFile, flags.keyFile);
  } catch (err) {
    return fail(errorMessage(err), EXIT_USAGE);
  }

  const logger = createLogger({ level: flags.logLevel, name: 'kfp-notify-webhook', destination: io.stdout });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'kfp_notify_' });
  const metrics = webhookMetrics(registry);
  try {
    options = watchInjectOptions(
      { configFile: flags.configFile, flags: flags.settings, hookKeyFile: flags.hookKeyFile, dataDir: flags.dataDir },
      { logger, onResult: (result) => metrics.configReloads.inc({ result }) },
    );
  } catch (err) {
    // A hook key the data dir could not hold is the machine's problem (1); bad settings are input (2).
    return fail(errorMessage(err), err instanceof DataDirError ? EXIT_FAILURE : EXIT_USAGE);
  }

  // Hooked before listening: a signal that arrives as soon as the port opens still stops us cleanly.
  const stop = stopSignal();
  let server;
  try {
    server = await startWebhookServer({
      host: flags.host,
      port: flags.port,
      certFile: flags.certFile,
      keyFile: flags.keyFile,
      logger,
      registry,
      getInjectOptions: options.get,
      injectThreads: flags.injectThreads,
    });
  } catch (err) {
    stop.cancel();
    options.close();
    logger.error({ err: errorMessage(err) }, 'webhook failed to start');
    return fail(errorMessage(err), EXIT_FAILURE);
  }
  logger.info({ settings: describeOptions(options.get()), configFile: flags.configFile }, 'injector settings loaded');

  const signal = await stop.received;
  logger.info({ signal }, 'stopping webhook');
  options.close();
  await server.close();
  logger.info('webhook stopped');
  return EXIT_OK;
}

export const command: Command = {
  name: 'webhook',
  summary: 'run the mutating admission webhook (HTTPS)',
  run,
};
