import { Counter, Histogram, type Registry } from 'prom-client';

/** What happened to one AdmissionReview. `invalid` is a 400/413: the body was not a usable AdmissionReview. */
export type AdmissionOutcome = 'injected' | 'skipped' | 'failed_open' | 'invalid';
/** Why the webhook failed open. */
export type FailOpenCause = 'error' | 'timeout';
/** A reload of the serving certificate or of the injector settings. */
export type ReloadResult = 'reloaded' | 'rejected';

export interface WebhookMetrics {
  requests: Counter<'outcome'>;
  skips: Counter<'reason'>;
  failedOpen: Counter<'cause'>;
  duration: Histogram<'outcome'>;
  patchBytes: Histogram;
  certReloads: Counter<'result'>;
  configReloads: Counter<'result'>;
  injectWorkerRestarts: Counter<'reason'>;
}

// One set per registry: `serve` builds the webhook app and its server on a registry it shares with the
// callback, and prom-client throws on a second registration of the same name.
const byRegistry = new WeakMap<Registry, WebhookMetrics>();

export function webhookMetrics(registry: Registry): WebhookMetrics {
  const known = byRegistry.get(registry);
  if (known) return known;
  const registers = [registry];
  const metrics: WebhookMetrics = {
    requests: new Counter({
      name: 'kfp_notify_admission_requests_total',
      help: 'AdmissionReviews answered, by outcome (injected, skipped, failed_open, invalid)',
      labelNames: ['outcome'],
      registers,
    }),
    skips: new Counter({
      name: 'kfp_notify_admission_skips_total',
      help: 'Workflows admitted without hooks, by reason class',
      labelNames: ['reason'],
      registers,
    }),
    failedOpen: new Counter({
      name: 'kfp_notify_admission_failed_open_total',
      help: 'Workflows admitted unchanged because injection threw or ran past its time budget',
      labelNames: ['cause'],
      registers,
    }),
    duration: new Histogram({
      name: 'kfp_notify_admission_duration_seconds',
      help: 'Time from a parsed AdmissionReview to its answer, by outcome',
      labelNames: ['outcome'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
      registers,
    }),
    patchBytes: new Histogram({
      name: 'kfp_notify_admission_patch_bytes',
      help: 'Size of the JSON patch returned for an injected Workflow (bytes, before base64)',
      buckets: [1024, 4096, 16384, 65536, 262144, 1048576],
      registers,
    }),
    injectWorkerRestarts: new Counter({
      name: 'kfp_notify_inject_worker_restarts_total',
      help: 'Inject worker threads replaced, by reason (exit: it died; stuck: it answered nothing within the time budget)',
      labelNames: ['reason'],
      registers,
    }),
    certReloads: new Counter({
      name: 'kfp_notify_webhook_cert_reloads_total',
      help: 'Serving certificate changes seen on disk: reloaded, or rejected (old pair kept)',
      labelNames: ['result'],
      registers,
    }),
    configReloads: new Counter({
      name: 'kfp_notify_webhook_config_reloads_total',
      help: 'Injector config or hook key changes seen on disk: reloaded, or rejected (old settings kept)',
      labelNames: ['result'],
      registers,
    }),
  };
  byRegistry.set(registry, metrics);
  return metrics;
}
