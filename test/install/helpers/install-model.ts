import { matchesSelector, named, ofKind } from './k8s-semantics.js';
import type { Container, Deployment, Service } from './k8s-types.js';
import type { K8sObject } from './render.js';

/** Where the rendered install sends traffic and what each process is told, followed the way Kubernetes would. */

export const NAMESPACE = 'kfp-notify';

/** `--flag value` out of a container's args (the manifests never use `--flag=value`). */
export function flag(container: Container, name: string): string | undefined {
  const args = container.args ?? [];
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

export function onlyContainer(d: Deployment): Container {
  const [c, ...rest] = d.spec.template.spec.containers;
  if (!c || rest.length > 0) throw new Error(`${d.metadata.name}: expected exactly one container`);
  return c;
}

export interface Endpoint {
  service: Service;
  deployment: Deployment;
  container: Container;
  containerPort: number;
}

/**
 * Service `name.namespace`, port `port` → the one Deployment whose pods its selector picks, and the
 * container port its targetPort names. Throws when any step does not resolve, as the traffic would fail.
 */
export function resolveServicePort(objects: readonly K8sObject[], name: string, namespace: string, port: number): Endpoint {
  const service = named<Service>(objects, 'Service', name, namespace);
  const sp = (service.spec.ports ?? []).find((p) => p.port === port);
  if (!sp) throw new Error(`Service ${namespace}/${name} has no port ${port}`);
  const selector = service.spec.selector;
  if (!selector || Object.keys(selector).length === 0) throw new Error(`Service ${namespace}/${name} selects no pods`);
  const picked = ofKind<Deployment>(objects, 'Deployment').filter(
    (d) => d.metadata.namespace === namespace && matchesSelector({ matchLabels: selector }, d.spec.template.metadata?.labels ?? {}),
  );
  const [deployment, ...others] = picked;
  if (!deployment || others.length > 0) throw new Error(`Service ${namespace}/${name} selects ${picked.length} Deployments, expected 1`);
  const target = sp.targetPort ?? sp.port;
  for (const container of deployment.spec.template.spec.containers) {
    const cp = (container.ports ?? []).find((p) => (typeof target === 'number' ? p.containerPort === target : p.name === target));
    if (cp) return { service, deployment, container, containerPort: cp.containerPort };
  }
  throw new Error(`Service ${namespace}/${name} port ${port} targets ${String(target)}, which no container of ${deployment.metadata.name} exposes`);
}

/** `<service>.<namespace>.svc[.cluster.local]` → its name and namespace, or undefined for any other host. */
export function serviceOfHost(host: string): { name: string; namespace: string } | undefined {
  const m = /^([a-z0-9-]+)\.([a-z0-9-]+)\.svc(\.cluster\.local)?$/.exec(host);
  return m ? { name: m[1] ?? '', namespace: m[2] ?? '' } : undefined;
}
