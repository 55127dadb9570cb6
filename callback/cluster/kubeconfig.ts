import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { errorMessage } from '../../common/error-message.js';

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export interface KubeConfigSources {
  env?: NodeJS.ProcessEnv;
  home?: string;
  serviceAccountToken?: string;
}

/**
 * Which configuration client-node's `loadFromDefault` would pick, in its order: `$KUBECONFIG`,
 * `~/.kube/config`, then in-cluster (service account token + KUBERNETES_SERVICE_HOST). Unlike
 * `loadFromDefault` it never falls back to `http://localhost:8080`: with none of them there is no
 * cluster, and the callback runs without one.
 */
export function kubeConfigSource(src: KubeConfigSources = {}): 'kubeconfig-env' | 'kubeconfig-home' | 'in-cluster' | undefined {
  const env = src.env ?? process.env;
  if (env.KUBECONFIG && env.KUBECONFIG.trim() !== '') return 'kubeconfig-env';
  const home = src.home ?? homedir();
  if (home && existsSync(join(home, '.kube', 'config'))) return 'kubeconfig-home';
  if (env.KUBERNETES_SERVICE_HOST && existsSync(src.serviceAccountToken ?? SERVICE_ACCOUNT_TOKEN)) return 'in-cluster';
  return undefined;
}

/**
 * The cluster connection, or undefined when there is none. Throws (with the file named) when a
 * kubeconfig exists but cannot be read, so the CLI can report it instead of silently running
 * without the cluster.
 */
export function loadKubeConfig(src: KubeConfigSources = {}): KubeConfig | undefined {
  const source = kubeConfigSource(src);
  if (!source) return undefined;
  const env = src.env ?? process.env;
  const kc = new KubeConfig();
  try {
    if (source === 'in-cluster') kc.loadFromCluster();
    else if (source === 'kubeconfig-home') kc.loadFromFile(join(src.home ?? homedir(), '.kube', 'config'));
    else {
      // Several files merge as kubectl merges them: the first one's current-context wins.
      const [first, ...rest] = (env.KUBECONFIG ?? '').split(delimiter).filter((f) => f !== '');
      kc.loadFromFile(first ?? '');
      for (const file of rest) {
        const more = new KubeConfig();
        more.loadFromFile(file);
        kc.mergeConfig(more, true);
      }
    }
  } catch (err) {
    const where = source === 'kubeconfig-env' ? `$KUBECONFIG (${env.KUBECONFIG})` : source === 'kubeconfig-home' ? '~/.kube/config' : 'the in-cluster service account';
    throw new Error(`cannot load the Kubernetes configuration from ${where}: ${errorMessage(err)}`);
  }
  if (!kc.getCurrentCluster()) throw new Error('the Kubernetes configuration has no current cluster (set current-context)');
  return kc;
}
