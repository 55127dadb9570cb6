/**
 * The callback's cluster side, for callback/runtime.ts: where the Kubernetes API is, Workflow
 * enrichment for hook calls, the status watcher that backstops the hooks, and subscribers from a
 * ConfigMap. Each is optional: without a cluster (`loadKubeConfig()` is undefined) the callback runs
 * on hook calls and a local subscribers file alone.
 */
export { loadKubeConfig, kubeConfigSource } from './kubeconfig.js';
export { createEnricher, type Enricher, type EnricherOptions, type EnrichHint } from './enrich.js';
export { startStatusWatcher, type StatusWatcher, type StatusWatcherOptions } from './watcher.js';
export { startSubscriberConfigWatch, type SubscriberConfigWatch, type SubscriberConfigWatchOptions } from './config-watch.js';
export { clusterMetrics, type ClusterMetrics } from './metrics.js';
export { startClusterServices, startClusterSubscribers, type ClusterServiceOptions, type ClusterServices, type ClusterSubscriberSource } from './services.js';
