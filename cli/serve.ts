import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { ensureDataDir, resolveDataDir } from '../common/data-dir.js';
import { createLogger } from '../common/logger.js';
import { adminTokenPath } from '../callback/runtime.js';
import { SETTING_FLAGS, checkSettings, describeOptions, loadInjectOptions } from '../webhook/injector-config.js';
import { SELF_SIGNED_CERT_FILE, SELF_SIGNED_KEY_FILE, ensureSelfSignedCert } from '../webhook/self-signed.js';
import { startWebhookServer } from '../webhook/server.js';
import { launchCallback, parseCallbackFlags, untilSignal } from './callback.js';
import { EXIT_FAILURE, EXIT_OK, LOG_LEVEL_HELP, UsageError, parseOrExit, portFlag, type CliIo, type Command, strictParse } from './io.js';
import { errorMessage } from '../common/error-message.js';

const HOOK_SECRETS_FILE = 'hook-secrets.json';

const USAGE = `Usage: kfp-notify serve [options]

Runs the webhook and the callback together on loopback, no cluster needed: the webhook (HTTPS, a
self-signed certificate made in the data dir on first run) injects hooks that call this callback.
Workflows injected with \`kfp-notify inject --callback-url http://127.0.0.1:<callback port>\` and the
same data dir make hook calls it accepts. Logs are JSON lines on stdout; Ctrl-C stops both.

Options:
  --data-dir D          state: callback.db, hook-key, admin-token, ${SELF_SIGNED_CERT_FILE}, ${SELF_SIGNED_KEY_FILE},
                        ${HOOK_SECRETS_FILE}
                        (default ./.kfp-notify or $KFP_NOTIFY_DATA_DIR)
  --callback-port N     callback port (default 8080; 0 picks a free one)
  --webhook-port N      webhook port (default 8443; 0 picks a free one)
  --host H              address both bind (default 127.0.0.1)
  --subscribers FILE    subscribers as ConfigMap data (YAML/JSON), watched; default: one "log" subscriber
  --secrets FILE        signing secrets for --subscribers: { "<secret>": { "<key>": "<value>" } }
  --argo-version X      the Argo version the injected hooks target (default 4.0.5)
  --mode M              container (default) or http hook templates
  --step-hooks P        all | failed | none: which step outcomes an exit hook reports (default: all
                        without a cluster, where no status watcher reports the rest; with one the
                        cheapest for --argo-version: failed from 3.4, else none)
  --retry-scale X       multiply every retry delay by X (default 1)
  --durability D        fsync (default) or write: when a hook call gets its 202 (see kfp-notify callback --help)
  --disable-after D     disable a subscriber after this long without a successful delivery (default 5d; 0 never)
  --no-cluster          never talk to Kubernetes (the default unless in a pod)
  --watch-grace D       with a cluster: how long the status watcher waits for a hook (default 60s)
  --kfp-ui-url URL      the KFP UI's base URL: events link to their run (see kfp-notify callback --help)
  --log-level L         ${LOG_LEVEL_HELP} (default info)
  -h, --help            show this help
`;

interface ServeFlags {
  callbackArgs: string[];
  webhookPort: number;
  host: string;
  argoVersion?: string;
  mode?: string;
  stepHooks?: string;
}

function parseServeFlags(args: string[]): ServeFlags | 'help' {
  const v = strictParse({
    args,
    strict: true,
    options: {
      'data-dir': { type: 'string' },
      'callback-port': { type: 'string', default: '8080' },
      'webhook-port': { type: 'string', default: '8443' },
      host: { type: 'string', default: '127.0.0.1' },
      subscribers: { type: 'string' },
      secrets: { type: 'string' },
      'argo-version': { type: 'string' },
      mode: { type: 'string' },
      'step-hooks': { type: 'string' },
      'retry-scale': { type: 'string' },
      durability: { type: 'string' },
      'no-cluster': { type: 'boolean', default: false },
      'watch-grace': { type: 'string' },
      'kfp-ui-url': { type: 'string' },
      'disable-after': { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
  if (v.help) return 'help';
  const webhookPort = portFlag(v['webhook-port'], '--webhook-port');
  // Checked here under the name the user typed; the callback half checks it again as its --port.
  portFlag(v['callback-port'], '--callback-port');
  // The callback half takes the callback command's own flags, so both parse (and fail) alike.
  const pass = (flag: string, value: string | undefined): string[] => (value === undefined ? [] : [flag, value]);
  const callbackArgs = [
    ...pass('--port', v['callback-port']),
    ...pass('--host', v.host),
    ...pass('--data-dir', v['data-dir']),
    ...pass('--subscribers', v.subscribers),
    ...pass('--secrets', v.secrets),
    ...pass('--retry-scale', v['retry-scale']),
    ...pass('--durability', v.durability),
    ...pass('--watch-grace', v['watch-grace']),
    ...pass('--kfp-ui-url', v['kfp-ui-url']),
    ...pass('--disable-after', v['disable-after']),
    ...pass('--log-level', v['log-level']),
    ...(v['no-cluster'] ? ['--no-cluster'] : []),
  ];
  return {
    callbackArgs,
    webhookPort,
    host: v.host,
    ...(v['argo-version'] ? { argoVersion: v['argo-version'] } : {}),
    ...(v.mode ? { mode: v.mode } : {}),
    ...(v['step-hooks'] ? { stepHooks: v['step-hooks'] } : {}),
  };
}

async function run(args: string[], io: CliIo): Promise<number> {
  const parsed = parseOrExit('serve', USAGE, io, () => {
    const serve = parseServeFlags(args);
    if (serve === 'help') return 'help';
    const callback = parseCallbackFlags(serve.callbackArgs, io.env);
    if (callback === 'help') return 'help';
    try {
      const settings = checkSettings({ argoVersion: serve.argoVersion, mode: serve.mode, stepHooks: serve.stepHooks }, (k) => SETTING_FLAGS[k as keyof typeof SETTING_FLAGS] ?? k);
      return { serve, callback, settings };
    } catch (err) {
      throw new UsageError(errorMessage(err));
    }
  });
  if ('exit' in parsed) return parsed.exit;
  const { serve: flags, callback: callbackFlags, settings } = parsed.flags;

  const log = createLogger({ level: callbackFlags.logLevel, destination: io.stdout });
  const dataDir = ensureDataDir(callbackFlags.dataDir);
  // The local notifier reads nothing from a Kubernetes Secret (its token is minted into the template),
  // so a local run needs no secret values: say so in the file a local player would read.
  writeFileSync(join(dataDir, HOOK_SECRETS_FILE), '{}\n', { mode: 0o600 });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'kfp_notify_' });

  const callback = await launchCallback(callbackFlags, io, log, registry, 'serve');
  if (typeof callback === 'number') return callback;
  let webhook;
  try {
    const cert = await ensureSelfSignedCert(dataDir);
    // Without a cluster no status watcher reports what a cheaper policy leaves to it: every step keeps its hook.
    const stepHooks = settings.stepHooks ?? (callbackFlags.cluster ? undefined : 'all');
    const injectOptions = loadInjectOptions({ flags: { ...settings, ...(stepHooks ? { stepHooks } : {}), callbackUrl: callback.url }, dataDir });
    webhook = await startWebhookServer({
      host: flags.host,
      port: flags.webhookPort,
      certFile: cert.certFile,
      keyFile: cert.keyFile,
      logger: log,
      registry: new Registry(),
      getInjectOptions: () => injectOptions,
    });
    log.info({ webhook: webhook.url, callback: callback.url, dataDir, inject: describeOptions(injectOptions) }, 'serve ready');
    io.stderr.write(
      [
        `kfp-notify serve: webhook ${webhook.url}/mutate (certificate ${cert.certFile})`,
        `                  callback ${callback.url}/v1/hooks (admin token ${adminTokenPath(dataDir)})`,
        `                  dashboard ${callback.url}/ui/ (log in with the admin token)`,
        `Inject a workflow for it: npx kfp-notify inject -f FILE --callback-url ${callback.url}${dataDir === resolveDataDir() ? '' : ` --data-dir ${dataDir}`}`,
        'Ctrl-C stops both.',
        '',
      ].join('\n'),
    );
  } catch (err) {
    await callback.close();
    io.stderr.write(`kfp-notify serve: ${errorMessage(err)}\n`);
    return EXIT_FAILURE;
  }
  const signal = await untilSignal();
  log.info({ signal }, 'shutting down');
  await webhook.close();
  await callback.close();
  return EXIT_OK;
}

export const command: Command = {
  name: 'serve',
  summary: 'run webhook and callback on loopback, no cluster needed',
  run,
};
