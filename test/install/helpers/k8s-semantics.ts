import type { LabelSelector, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, PolicyRule, Role, RoleBinding } from './k8s-types.js';
import type { K8sObject } from './render.js';

/**
 * The few Kubernetes rules the install tests reason with (label selectors, RBAC, NetworkPolicy),
 * written from the API reference so the tests can ask "may X do Y?" rather than compare YAML.
 */

export function ofKind<T>(objects: readonly K8sObject[], kind: string): T[] {
  return objects.filter((o) => o.kind === kind) as unknown as T[];
}

export function named<T>(objects: readonly K8sObject[], kind: string, name: string, namespace?: string): T {
  const found = objects.filter((o) => o.kind === kind && o.metadata.name === name && (namespace === undefined || o.metadata.namespace === namespace));
  if (found.length !== 1) throw new Error(`expected one ${kind} ${namespace ? `${namespace}/` : ''}${name}, found ${found.length}`);
  return found[0] as unknown as T;
}

export function matchesSelector(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    const values = e.values ?? [];
    const ok =
      e.operator === 'In' ? has && values.includes(value ?? '')
      : e.operator === 'NotIn' ? !has || !values.includes(value ?? '')
      : e.operator === 'Exists' ? has
      : e.operator === 'DoesNotExist' ? !has
      : false;
    if (!ok) return false;
  }
  return true;
}

// ---------- RBAC ----------

export interface ServiceAccountRef {
  namespace: string;
  name: string;
}

export interface ResourceRequest {
  verb: string;
  group: string;
  /** `resource` or `resource/subresource`. */
  resource: string;
  namespace: string;
  /** The object's name, for a request on one object (get, update); rules with resourceNames match only these. */
  name?: string;
}

interface ScopedRule {
  rule: PolicyRule;
  /** undefined: every namespace. */
  namespace?: string;
}

function bindsServiceAccount(subjects: RoleBinding['subjects'], sa: ServiceAccountRef, bindingNamespace?: string): boolean {
  // A RoleBinding's ServiceAccount subject without a namespace means the binding's own namespace.
  return (subjects ?? []).some((s) => s.kind === 'ServiceAccount' && s.name === sa.name && (s.namespace ?? bindingNamespace) === sa.namespace);
}

/** The rules a ServiceAccount holds through the bindings among `objects`. Unresolvable roleRefs throw. */
export function rulesOf(objects: readonly K8sObject[], sa: ServiceAccountRef): ScopedRule[] {
  const out: ScopedRule[] = [];
  for (const b of ofKind<RoleBinding>(objects, 'ClusterRoleBinding')) {
    if (!bindsServiceAccount(b.subjects, sa)) continue;
    const role = named<Role>(objects, 'ClusterRole', b.roleRef.name);
    for (const rule of role.rules ?? []) out.push({ rule });
  }
  for (const b of ofKind<RoleBinding>(objects, 'RoleBinding')) {
    const ns = b.metadata.namespace;
    if (!ns || !bindsServiceAccount(b.subjects, sa, ns)) continue;
    const role = b.roleRef.kind === 'ClusterRole' ? named<Role>(objects, 'ClusterRole', b.roleRef.name) : named<Role>(objects, 'Role', b.roleRef.name, ns);
    for (const rule of role.rules ?? []) out.push({ rule, namespace: ns });
  }
  return out;
}

function listHas(list: readonly string[] | undefined, want: string): boolean {
  return (list ?? []).some((x) => x === want || x === '*');
}

export function allows(objects: readonly K8sObject[], sa: ServiceAccountRef, req: ResourceRequest): boolean {
  return rulesOf(objects, sa).some(
    ({ rule, namespace }) =>
      (namespace === undefined || namespace === req.namespace) &&
      listHas(rule.apiGroups, req.group) &&
      listHas(rule.resources, req.resource) &&
      listHas(rule.verbs, req.verb) &&
      ((rule.resourceNames ?? []).length === 0 || (req.name !== undefined && (rule.resourceNames ?? []).includes(req.name))),
  );
}

// ---------- NetworkPolicy ----------

/** A connection's far end: a pod (its namespace's labels and its own), or an address outside any pod. */
export type Peer = { namespace: string; namespaceLabels: Record<string, string>; podLabels: Record<string, string> } | { ip: string };

export interface PodRef {
  namespace: string;
  labels: Record<string, string>;
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  const size = 2 ** (32 - Number(bits));
  const start = Math.floor(ipv4ToInt(base ?? '') / size) * size;
  const n = ipv4ToInt(ip);
  return n >= start && n < start + size;
}

function peerMatches(p: NetworkPolicyPeer, policyNamespace: string, peer: Peer): boolean {
  if ('ip' in peer) return p.ipBlock !== undefined && inCidr(peer.ip, p.ipBlock.cidr) && !(p.ipBlock.except ?? []).some((c) => inCidr(peer.ip, c));
  if (p.ipBlock) return false;
  const nsOk = p.namespaceSelector ? matchesSelector(p.namespaceSelector, peer.namespaceLabels) : peer.namespace === policyNamespace;
  const podOk = p.podSelector ? matchesSelector(p.podSelector, peer.podLabels) : true;
  return nsOk && podOk;
}

function portMatches(ports: NetworkPolicyPort[] | undefined, port: number): boolean {
  if (!ports || ports.length === 0) return true;
  return ports.some((p) => (p.protocol ?? 'TCP') === 'TCP' && (p.port === undefined || p.port === port || (p.endPort !== undefined && typeof p.port === 'number' && port >= p.port && port <= p.endPort)));
}

function connectionAllowed(objects: readonly K8sObject[], pod: PodRef, peer: Peer, port: number, direction: 'Ingress' | 'Egress'): boolean {
  const selecting = ofKind<NetworkPolicy>(objects, 'NetworkPolicy').filter(
    (np) => np.metadata.namespace === pod.namespace && matchesSelector(np.spec.podSelector, pod.labels) && (np.spec.policyTypes ?? ['Ingress']).includes(direction),
  );
  // A pod no policy selects (for this direction) is not isolated.
  if (selecting.length === 0) return true;
  return selecting.some((np) => {
    const rules = direction === 'Ingress' ? (np.spec.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports })) : (np.spec.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }));
    return rules.some(({ peers, ports }) => {
      const peerOk = !peers || peers.length === 0 || peers.some((p) => peerMatches(p, pod.namespace, peer));
      return peerOk && portMatches(ports, port);
    });
  });
}

/** TCP from `peer` to `pod`:`port`, under the NetworkPolicies among `objects`. */
export function ingressAllowed(objects: readonly K8sObject[], pod: PodRef, from: Peer, port: number): boolean {
  return connectionAllowed(objects, pod, from, port, 'Ingress');
}

/** TCP from `pod` to `to`:`port`, under the NetworkPolicies among `objects`. */
export function egressAllowed(objects: readonly K8sObject[], pod: PodRef, to: Peer, port: number): boolean {
  return connectionAllowed(objects, pod, to, port, 'Egress');
}
