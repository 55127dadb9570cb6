import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { resolveDataDir } from '../common/data-dir.js';
import { createLogger, type Logger } from '../common/logger.js';
import { retryScaleFromEnv } from '../callback/retry.js';
import { DURABILITIES, type Durability } from '../callback/store/sqlite.js';
import { adminTokenPath, startCallback, type CallbackRuntime, type ClusterServices, type SubscriberSource } from '../callback/runtime.js';
import { durationMs } from '../callback/subscribers/duration.js';
import { SubscriberConfigError, watchSubscriberFiles } from '../callback/subscribers/file-source.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, LOG_LEVEL_HELP, UsageError, logLevelFlag, portFlag, type CliIo, type Command, parseOrExit, strictParse } from './io.js';
import { errorMessage } from '../common/error-message.js';
import { parseKfpUiUrl } from '../callback/run-url.js';
import { parseStoreFlags, parseWatchLease, STORE_OPTIONS, STORE_USAGE, type StoreChoice } from './store-flags.js';

const USAGE = `Usage: kfp-notify callback [options]

Runs the callback service: accepts hook calls on POST /v1/hooks, stores them durably (SQLite in the
data dir, or NATS JetStream with --store nats://...) and delivers them to subscribers, with retries
and a dead-letter list.

Options:
  --port N                     listen port (default 8080; 0 picks a free one)
  --host H                     listen address (default 127.0.0.1; 0.0.0.0 in a pod)
  --data-dir D                 state: callback.db, hook-key, admin-token (default ./.kfp-notify or $KFP_NOTIFY_DATA_DIR)
  --subscribers FILE           subscribers as ConfigMap data (YAML/JSON), watched; default: one "log" subscriber
  --secrets FILE               signing secrets for --subscribers: { "<secret>": { "<key>": "<value>" } }
  --hook-key-file F            hook token keys (default <data dir>/hook-key, created on first run)
  --admin-token-file F         admin API token (default <data dir>/admin-token, created on first run)
  --retry-scale X              multiply every retry delay by X (tests/demos; default 1 or $KFP_NOTIFY_RETRY_SCALE)
  --durability D               when a hook call gets its 202 (default fsync or $KFP_NOTIFY_DURABILITY):
                               fsync  once the event is fdatasync'ed: survives a process crash and a power loss
                               write  once the event is in the OS page cache: survives a process crash; a power
                                      loss or kernel crash can lose the last ~200 ms of events
${STORE_USAGE}  --no-cluster                 never talk to Kubernetes (no enrichment, no status watcher, no ConfigMap);
                               without it the cluster is used in a pod, or when --subscribers-configmap is given
  --disable-after D            disable a subscriber after this long without a successful delivery (default 5d;
                               0 never); re-enable with kfp-notify subscriber enable NAME
  --watch-grace D              how long the status watcher waits for a hook before reporting a fact (default 60s)
  --subscribers-configmap NAME read subscribers from this ConfigMap (watched) instead of a file
  --namespace NS               namespace of that ConfigMap (default $POD_NAMESPACE, the pod's, or the kubeconfig context's)
  --kfp-ui-url URL             the KFP UI's base URL (e.g. https://kubeflow.example.com/pipeline, or $KFP_NOTIFY_KFP_UI_URL):
                               every event gets RunUrl <URL>/#/runs/details/<run id>, and chat formats link to it
  --log-level L                ${LOG_LEVEL_HELP} (default info or $LOG_LEVEL)
  -h, --help                   show this help
`;

export interface CallbackFlags {
  port: number;
  host: string;
  dataDir: string;
  subscribersFile?: string;
  secretsFile?: string;
  hookKeyFile?: string;
  adminTokenFile?: string;
  retryScale: number;
  durability: Durability;
  store: StoreChoice;
  watchLease?: string;
  cluster: boolean;
  watchGraceMs: number;
  disableAfterMs: number;
  configMap?: string;
  namespace?: string;
  kfpUiUrl?: string;
  logLevel: string;
}

export function parseCallbackFlags(args: string[], env: NodeJS.ProcessEnv): CallbackFlags | 'help' {
  const parsed = strictParse({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      port: { type: 'string', default: '8080' },
      host: { type: 'string', default: '127.0.0.1' },
      'data-dir': { type: 'string' },
      subscribers: { type: 'string' },
      secrets: { type: 'string' },
      'hook-key-file': { type: 'string' },
      'admin-token-file': { type: 'string' },
      'retry-scale': { type: 'string' },
      durability: { type: 'string', default: env.KFP_NOTIFY_DURABILITY || 'fsync' },
      'no-cluster': { type: 'boolean', default: false },
      'watch-grace': { type: 'string', default: '60s' },
      'disable-after': { type: 'string', default: '5d' },
      'subscribers-configmap': { type: 'string' },
      namespace: { type: 'string' },
      'kfp-ui-url': { type: 'string', default: env.KFP_NOTIFY_KFP_UI_URL || undefined },
      'log-level': { type: 'string', default: env.LOG_LEVEL ?? 'info' },
      help: { type: 'boolean', short: 'h', default: false },
      ...STORE_OPTIONS,
    },
  });
  const v = parsed.values;
  if (v.help) return 'help';
  const port = portFlag(v.port, '--port');
  let retryScale: number;
  if (v['retry-scale'] !== undefined) {
    retryScale = Number(v['retry-scale']);
    if (!Number.isFinite(retryScale) || retryScale <= 0) throw new UsageError(`--retry-scale must be a positive number (got ${v['retry-scale']})`);
  } else {
    try {
      retryScale = retryScaleFromEnv(env);
    } catch (err) {
      throw new UsageError(errorMessage(err));
    }
  }
  const durability = DURABILITIES.find((d) => d === v.durability);
  if (!durability) throw new UsageError(`--durability must be one of ${DURABILITIES.join(', ')} (got ${v.durability})`);
  const watchGraceMs = durationMs(v['watch-grace'], 1000);
  if (watchGraceMs === undefined) throw new UsageError(`--watch-grace must be a duration such as 60s, 2m or 500ms (got ${v['watch-grace']})`);
  logLevelFlag(v['log-level']);
  const disableAfterMs = durationMs(v['disable-after'], 1000);
  if (disableAfterMs === undefined) throw new UsageError(`--disable-after must be a duration such as 5d, 12h or 0 (got ${v['disable-after']})`);
  const store = parseStoreFlags(v, env);
  const watchLease = parseWatchLease(v, store);
  if (v.secrets && !v.subscribers) throw new UsageError('--secrets only applies with --subscribers');
  if (v.subscribers && v['subscribers-configmap']) throw new UsageError('give --subscribers or --subscribers-configmap, not both');
  if (v['no-cluster'] && (v['subscribers-configmap'] || v.namespace)) {
    throw new UsageError('--subscribers-configmap and --namespace need the cluster; drop --no-cluster');
  }
  const kfpUi = v['kfp-ui-url'] ? parseKfpUiUrl(v['kfp-ui-url']) : undefined;
  if (kfpUi && !kfpUi.ok) throw new UsageError(`--kfp-ui-url: ${kfpUi.error}`);
  return {
    port,
    host: v.host,
    dataDir: resolveDataDir(v['data-dir'] ?? env.KFP_NOTIFY_DATA_DIR),
    ...(v.subscribers ? { subscribersFile: v.subscribers } : {}),
    ...(v.secrets ? { secretsFile: v.secrets } : {}),
    ...(v['hook-key-file'] ? { hookKeyFile: v['hook-key-file'] } : {}),
    ...(v['admin-token-file'] ? { adminTokenFile: v['admin-token-file'] } : {}),
    retryScale,
    durability,
    store,
    ...(watchLease ? { watchLease } : {}),
    // The cluster is used when asked for (a ConfigMap) or when running in a pod, never by accident
    // from a developer's kubeconfig.
    cluster: !v['no-cluster'] && (v['subscribers-configmap'] !== undefined || Boolean(env.KUBERNETES_SERVICE_HOST)),
    watchGraceMs,
    disableAfterMs,
    ...(v['subscribers-configmap'] ? { configMap: v['subscribers-configmap'] } : {}),
    ...(v.namespace ? { namespace: v.namespace } : {}),
    ...(kfpUi?.ok ? { kfpUiUrl: kfpUi.base } : {}),
    logLevel: v['log-level'],
  };
}

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** The pod's namespace: --namespace, $POD_NAMESPACE, the service account's, the kubeconfig context's, else default. */
function ownNamespace(flags: CallbackFlags, env: NodeJS.ProcessEnv, kc: KubeConfig): string {
  if (flags.namespace) return flags.namespace;
  if (env.POD_NAMESPACE) return env.POD_NAMESPACE;
  if (existsSync(SERVICE_ACCOUNT_NAMESPACE)) return readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim();
  return kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
}

/**
 * Enrichment, the status watcher and (with --subscribers-configmap) ConfigMap subscribers, loaded
 * lazily: a run without the cluster never pays for the Kubernetes client.
 */
async function connectCluster(flags: CallbackFlags, env: NodeJS.ProcessEnv, log: Logger, registry: Registry): Promise<ClusterServices | undefined> {
  const { loadKubeConfig, startClusterServices } = await import('../callback/cluster/index.js');
  const kubeConfig = loadKubeConfig({ env });
  if (!kubeConfig) {
    if (flags.configMap) throw new Error('--subscribers-configmap needs a Kubernetes API: none found ($KUBECONFIG, ~/.kube/config, in-cluster)');
    log.warn('no Kubernetes configuration found: running without enrichment and status watcher');
    return undefined;
  }
  const namespace = ownNamespace(flags, env, kubeConfig);
  log.info({ namespace, configMap: flags.configMap, watchGraceMs: flags.watchGraceMs }, 'connecting to the cluster');
  return startClusterServices({
    kubeConfig,
    log,
    registry,
    watchGraceMs: flags.watchGraceMs,
    // Several replicas: the watcher runs on the one holding the Lease (others take over within 12 s).
    ...(flags.watchLease ? { watchLease: { namespace, name: flags.watchLease, identity: env.POD_NAME || `${hostname()}-${process.pid}` } } : {}),
    // Retry schedules are scaled once, by the worker (--retry-scale), whatever the subscribers' source.
    ...(flags.configMap ? { subscribers: { namespace, configMapName: flags.configMap } } : {}),
  });
}

/** Resolves on the first SIGINT/SIGTERM; a second one exits at once. */
export function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const onSignal = (sig: string) => {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      process.once('SIGINT', () => process.exit(EXIT_FAILURE));
      process.once('SIGTERM', () => process.exit(EXIT_FAILURE));
      resolve(sig);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/**
 * Starts a callback from parsed flags: cluster services, subscribers file, runtime. Shared by
 * `callback` and `serve`. Resolves to the runtime, or to an exit code after printing why not.
 */
export async function launchCallback(flags: CallbackFlags, io: CliIo, log: Logger, registry: Registry, command = 'callback'): Promise<CallbackRuntime | number> {
  let cluster: ClusterServices | undefined;
  if (flags.cluster) {
    try {
      cluster = await connectCluster(flags, io.env, log, registry);
    } catch (err) {
      io.stderr.write(`kfp-notify ${command}: ${errorMessage(err)}\n`);
      return EXIT_FAILURE;
    }
  }

  let subscribers: SubscriberSource | undefined;
  if (flags.subscribersFile) {
    try {
      subscribers = await watchSubscriberFiles({ file: flags.subscribersFile, ...(flags.secretsFile ? { secretsFile: flags.secretsFile } : {}), log });
    } catch (err) {
      const msg = err instanceof SubscriberConfigError ? err.errors.map((e) => `  ${e}`).join('\n') : `  ${errorMessage(err)}`;
      io.stderr.write(`kfp-notify ${command}: cannot load subscribers from ${flags.subscribersFile}:\n${msg}\n`);
      await cluster?.close?.();
      return EXIT_USAGE;
    }
  }

  try {
    return await startCallback({
      dataDir: flags.dataDir,
      log,
      listen: { host: flags.host, port: flags.port },
      ...(subscribers ? { subscribers } : {}),
      ...(cluster ? { cluster } : {}),
      registry,
      ...(flags.hookKeyFile ? { hookKeyFile: flags.hookKeyFile } : {}),
      ...(flags.adminTokenFile ? { adminTokenFile: flags.adminTokenFile } : {}),
      retryScale: flags.retryScale,
      durability: flags.durability,
      ...(flags.kfpUiUrl ? { kfpUiUrl: flags.kfpUiUrl } : {}),
      disableAfterMs: flags.disableAfterMs,
      store: flags.store,
    });
  } catch (err) {
    await subscribers?.close();
    await cluster?.close?.();
    io.stderr.write(`kfp-notify ${command}: ${errorMessage(err)}\n`);
    return EXIT_FAILURE;
  }
}

async function run(args: string[], io: CliIo): Promise<number> {
  const parsed = parseOrExit('callback', USAGE, io, () => parseCallbackFlags(args, io.env));
  if ('exit' in parsed) return parsed.exit;
  const flags = parsed.flags;
  const log = createLogger({ level: flags.logLevel, destination: io.stdout });
  const runtime = await launchCallback(flags, io, log, new Registry());
  if (typeof runtime === 'number') return runtime;
  log.info({ url: runtime.url, adminTokenFile: flags.adminTokenFile ?? adminTokenPath(flags.dataDir) }, 'callback listening');
  const signal = await untilSignal();
  log.info({ signal }, 'shutting down');
  await runtime.close();
  return EXIT_OK;
}

export const command: Command = {
  name: 'callback',
  summary: 'run the callback service alone',
  run,
};
