import { pino } from 'pino';
import { Registry } from 'prom-client';
import { readFileSync } from 'node:fs';
import { createLogger } from '../../common/logger.js';
import { parseHookKeys } from '../../common/hook-token.js';
import { defaultInjectOptions, injectWorkflow, type InjectOptions } from '../../webhook/inject/index.js';
import { startWebhookServer, type Injector } from '../../webhook/server.js';
import { childConfig, serveRpc } from '../lib/rpc.js';

/**
 * A diagnostic, not a target: the webhook server (startWebhookServer, as the CLI runs it) with its
 * injector replaced. `precomputed` answers every request with the result injectWorkflow gave the
 * first time, so the difference to the real webhook is the injector's own cost per request.
 */

const cfg = childConfig<{ certFile: string; keyFile: string; hookKeyFile: string; logFile: string; bodyLimit: number; sizeLimit: number; bodyFile: string }>();
const options: InjectOptions = {
  ...defaultInjectOptions({ hookKey: parseHookKeys(readFileSync(cfg.hookKeyFile, 'utf8'))[0]!, callbackUrl: 'http://127.0.0.1:8080' }),
  sizeLimitBytes: cfg.sizeLimit,
};
const review = JSON.parse(readFileSync(cfg.bodyFile, 'utf8')) as { request: { object: unknown; namespace: string } };
const precomputed = injectWorkflow(review.request.object, { ...options, namespace: review.request.namespace });
const inject: Injector = () => precomputed;
const server = await startWebhookServer({
  host: '127.0.0.1',
  port: 0,
  certFile: cfg.certFile,
  keyFile: cfg.keyFile,
  logger: createLogger({ level: 'info', name: 'kfp-notify-webhook', destination: pino.destination({ dest: cfg.logFile, sync: true }) }),
  registry: new Registry(),
  getInjectOptions: () => options,
  inject,
  bodyLimitBytes: cfg.bodyLimit,
});
serveRpc({ ready: () => ({ url: server.url }) });
