/**
 * The wire shapes (JSON field names, as in the rendered YAML) of the fields the install tests read.
 * Not @kubernetes/client-node's models: those rename some fields (`from` is `_from` there).
 * Objects are cast to these only after they have passed the Kubernetes schema check.
 */

export interface Meta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

export interface Role {
  kind: 'Role' | 'ClusterRole';
  metadata: Meta;
  rules?: PolicyRule[];
}

export interface Subject {
  kind: string;
  name: string;
  namespace?: string;
}

export interface RoleBinding {
  kind: 'RoleBinding' | 'ClusterRoleBinding';
  metadata: Meta;
  roleRef: { apiGroup: string; kind: string; name: string };
  subjects?: Subject[];
}

export interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  runAsGroup?: number;
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  privileged?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
  seccompProfile?: { type: string };
}

export interface Probe {
  httpGet?: { path?: string; port: number | string; scheme?: string };
}

export interface Container {
  name: string;
  image?: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports?: { name?: string; containerPort: number }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: SecurityContext;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
}

export interface Volume {
  name: string;
  secret?: { secretName: string };
  configMap?: { name: string };
  persistentVolumeClaim?: { claimName: string };
  emptyDir?: Record<string, unknown>;
  hostPath?: unknown;
  projected?: { sources: { serviceAccountToken?: { audience?: string; expirationSeconds?: number; path: string } }[]; defaultMode?: number };
}

export interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  securityContext?: SecurityContext & { fsGroup?: number };
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
}

export interface Deployment {
  metadata: Meta;
  spec: {
    replicas?: number;
    selector: LabelSelector;
    strategy?: { type?: string; rollingUpdate?: { maxUnavailable?: number | string } };
    template: { metadata?: { labels?: Record<string, string> }; spec: PodSpec };
  };
}

export interface ServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
}

export interface Service {
  metadata: Meta;
  spec: { selector?: Record<string, string>; ports?: ServicePort[] };
}

export interface ServiceAccount {
  metadata: Meta;
  automountServiceAccountToken?: boolean;
}

export interface ConfigMap {
  metadata: Meta;
  data?: Record<string, string>;
}

export interface Secret {
  metadata: Meta;
  type?: string;
  data?: Record<string, string>;
}

export interface PersistentVolumeClaim {
  metadata: Meta;
  spec: { accessModes?: string[] };
}

export interface PodDisruptionBudget {
  metadata: Meta;
  spec: { minAvailable?: number | string; maxUnavailable?: number | string; selector?: LabelSelector };
}

export interface MutatingWebhook {
  name: string;
  admissionReviewVersions: string[];
  clientConfig: { service?: { name: string; namespace: string; path?: string; port?: number }; caBundle?: string; url?: string };
  rules?: { operations?: string[]; apiGroups?: string[]; apiVersions?: string[]; resources?: string[]; scope?: string }[];
  failurePolicy?: string;
  matchPolicy?: string;
  namespaceSelector?: LabelSelector;
  objectSelector?: LabelSelector;
  sideEffects: string;
  timeoutSeconds?: number;
  reinvocationPolicy?: string;
}

export interface MutatingWebhookConfiguration {
  metadata: Meta;
  webhooks?: MutatingWebhook[];
}

export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}

export interface NetworkPolicyPort {
  protocol?: string;
  port?: number | string;
  endPort?: number;
}

export interface NetworkPolicy {
  metadata: Meta;
  spec: {
    podSelector: LabelSelector;
    policyTypes?: string[];
    ingress?: { from?: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] }[];
    egress?: { to?: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] }[];
  };
}

export interface Certificate {
  metadata: Meta;
  spec: {
    secretName: string;
    dnsNames?: string[];
    isCA?: boolean;
    issuerRef: { name: string; kind?: string };
  };
}

export interface Issuer {
  metadata: Meta;
  spec: { selfSigned?: Record<string, unknown>; ca?: { secretName: string } };
}
