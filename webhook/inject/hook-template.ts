import { CONTRACT_VERSION, HOOK_FIELDS, HOOK_TEMPLATE_LABEL, RUN_ID_LABEL, type HookField } from '../../common/hook-contract.js';
import { CALL_FIELDS, literal, type CallField } from './hook-call.js';
import { HOOK_TEMPLATE } from '../../common/injected-names.js';
import { rememberJson } from './patch-text.js';
import type { Template } from '../../common/kfp/workflow-types.js';

/** Everything the notifier template bakes in at admission. */
export interface HookTemplateInput {
  mode: 'container' | 'http';
  /** Full hook URL (base + HOOK_PATH). */
  url: string;
  image: string;
  /** The per-run hook token (see common/hook-token.ts). */
  token: string;
  runId: string;
  pipelineName: string;
  runName: string;
  recurringRunName: string;
}

const TOKEN_ENV = 'KFP_NOTIFY_TOKEN';
const URL_ENV = 'KFP_NOTIFY_URL';
const CURL_MAX_TIME_S = 10;
const CURL_RETRIES = 3;
const CURL_RETRY_MAX_TIME_S = 60;
const HTTP_TIMEOUT_S = 10;

const isCallField = (f: HookField): f is CallField => (CALL_FIELDS as readonly string[]).includes(f);

const envNameOf = (field: HookField): string => `HOOK_${field.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`;
// Worked out once: the notifier template is built on every admission.
const ENV_NAMES = new Map<HookField, string>(HOOK_FIELDS.map((f) => [f, envNameOf(f)]));

/** `nodeDisplayName` → `HOOK_NODE_DISPLAY_NAME`. */
export function envName(field: HookField): string {
  return ENV_NAMES.get(field) ?? envNameOf(field);
}

type EnvVar = { name: string; value: string } | { name: string; valueFrom: { fieldRef: { fieldPath: string } } };
const fieldRef = (name: string, fieldPath: string): EnvVar => ({ name, valueFrom: { fieldRef: { fieldPath } } });

/**
 * Where the curl pod gets each field. Per-pod facts come from the downward API: the workflow name is
 * empty at admission (generateName), and the hook's own node name exists only at run time. The hook
 * pod inherits `spec.podMetadata` labels, which carry the run id (KFP sets it; the injector ensures it).
 */
function containerEnv(f: HookField, v: RunValues): EnvVar {
  const name = envName(f);
  if (isCallField(f)) return { name, value: `{{inputs.parameters.${f}}}` };
  switch (f) {
    case 'v':
      return { name, value: CONTRACT_VERSION };
    case 'kfpRunId':
      return fieldRef(name, `metadata.labels['${RUN_ID_LABEL}']`);
    case 'namespace':
      return fieldRef(name, 'metadata.namespace');
    case 'workflowName':
      return fieldRef(name, "metadata.labels['workflows.argoproj.io/workflow']");
    case 'workflowUid':
      // Injected after KFP's ReplaceUID, so this stays the Kubernetes UID (tells apart re-created names).
      return { name, value: '{{workflow.uid}}' };
    case 'hookNodeName':
      return fieldRef(name, "metadata.annotations['workflows.argoproj.io/node-name']");
    case 'pipelineName':
      return { name, value: v.pipelineName };
    case 'runName':
      return { name, value: v.runName };
    case 'recurringRunName':
      return { name, value: v.recurringRunName };
  }
}

/**
 * The call never fails the pod: curl bounds each attempt and its retries, and `|| echo` turns any
 * transport or HTTP failure into a log line. Values travel in env vars and `--data-urlencode`, so no
 * value can break out of the shell command or the form encoding.
 */
function buildCurlScript(): string {
  const lines = [
    `curl -sS -o /dev/null -w 'kfp-notify: callback answered HTTP %{http_code}\\n'`,
    `--max-time ${CURL_MAX_TIME_S} --retry ${CURL_RETRIES} --retry-connrefused --retry-max-time ${CURL_RETRY_MAX_TIME_S}`,
    `-H "Authorization: Bearer \${${TOKEN_ENV}}"`,
    ...HOOK_FIELDS.map((f) => `--data-urlencode "${f}=\${${envName(f)}}"`),
    `"\${${URL_ENV}}"`,
  ];
  return `${lines.join(' \\\n  ')} \\\n  || echo 'kfp-notify: callback call failed; ignored so the run is unaffected'`;
}
// The same for every Workflow (values travel in env vars): built once.
const CURL_SCRIPT = buildCurlScript();

/**
 * Form body values for the HTTP template. Argo pastes them in unescaped, so only values that cannot
 * contain `&`, `=`, `+` or `%` go in: Argo phases, names, numbers, and admission-time literals
 * percent-encoded by `literal`. Free text (failures) stays out; the callback can read it from the
 * Workflow. `{{node.name}}` (Argo ≥ 3.5) may carry loop item values, so it goes last.
 */
function httpBodyValue(f: HookField, v: RunValues): string | undefined {
  if (f === 'failures') return undefined;
  if (isCallField(f)) return `{{inputs.parameters.${f}}}`;
  switch (f) {
    case 'v':
      return CONTRACT_VERSION;
    case 'kfpRunId':
      return v.runId;
    case 'namespace':
      return '{{workflow.namespace}}';
    case 'workflowName':
      return '{{workflow.name}}';
    case 'workflowUid':
      return '{{workflow.uid}}';
    case 'hookNodeName':
      return '{{node.name}}';
    case 'pipelineName':
      return v.pipelineName;
    case 'runName':
      return v.runName;
    case 'recurringRunName':
      return v.recurringRunName;
  }
}

function httpBody(v: RunValues): string {
  const order = [...HOOK_FIELDS.filter((f) => f !== 'hookNodeName'), 'hookNodeName' as const];
  return order.flatMap((f) => {
    const value = httpBodyValue(f, v);
    return value === undefined ? [] : [`${f}=${value}`];
  }).join('&');
}

/**
 * The notifier template, hardened so that no outcome of a hook call can change the user's run
 * (argo-kfp.md §2): defaults on every input, bounded time (`timeout` counts Pending time too),
 * pod-level retries only, no Istio sidecar (it would keep the pod alive), and never the KFP
 * cache label (the v1 cache webhook could replace the call with a cached "result").
 */
export function hookTemplate(x: HookTemplateInput): Template {
  const v = runValues(x);
  const template = buildTemplate(x, v);
  const json = templateJson(x, v);
  if (json !== undefined) rememberJson(template, json);
  return template;
}

/** The values that differ from run to run, each made safe for where the template puts it. */
interface RunValues {
  token: string;
  runId: string;
  pipelineName: string;
  runName: string;
  recurringRunName: string;
}

const runValues = (x: HookTemplateInput): RunValues => ({
  token: x.token,
  runId: literal('http', x.runId),
  pipelineName: literal(x.mode, x.pipelineName),
  runName: literal(x.mode, x.runName),
  recurringRunName: literal(x.mode, x.recurringRunName),
});

type Shape = Pick<HookTemplateInput, 'mode' | 'url' | 'image'>;

function buildTemplate(x: Shape, v: RunValues): Template {
  const common: Template = {
    name: HOOK_TEMPLATE,
    metadata: {
      annotations: { 'sidecar.istio.io/inject': 'false' },
      labels: { [HOOK_TEMPLATE_LABEL]: 'true' },
    },
    inputs: { parameters: CALL_FIELDS.map((name) => ({ name, default: '' })) },
    timeout: '3m',
    activeDeadlineSeconds: '120',
    retryStrategy: { limit: '2', retryPolicy: 'OnError' },
  };
  if (x.mode === 'http') {
    return {
      ...common,
      http: {
        method: 'POST',
        url: x.url,
        timeoutSeconds: HTTP_TIMEOUT_S,
        headers: [
          { name: 'Content-Type', value: 'application/x-www-form-urlencoded' },
          { name: 'Authorization', value: `Bearer ${v.token}` },
        ],
        body: httpBody(v),
        // Our callback answers 4xx only to calls it will never accept (bad token, bad fields): a Failed
        // node would be noise. 5xx and transport errors do show as Failed; the run is unaffected either way.
        successCondition: 'response.statusCode < 500',
      },
    };
  }
  return {
    ...common,
    container: {
      image: x.image,
      command: ['sh', '-c'],
      args: [CURL_SCRIPT],
      env: [{ name: URL_ENV, value: x.url }, { name: TOKEN_ENV, value: v.token }, ...HOOK_FIELDS.map((f) => containerEnv(f, v))],
      // A numeric UID: the kubelet cannot check runAsNonRoot against a named USER.
      securityContext: {
        runAsNonRoot: true,
        runAsUser: 65532,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      },
      resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '64Mi' } },
    },
  };
}

/**
 * The template's JSON, as `JSON.stringify` writes it, from a text cut once per setting (mode, URL,
 * image) around the per-run values: the template is most of every patch, and serializing it afresh
 * on each admission was a third of the patch's cost. Built from the template itself with markers in
 * place of the values, so the text cannot drift from the object; a value is JSON-escaped on its own,
 * which gives the same text because JSON escapes character by character.
 */
const MARK = (key: keyof RunValues): string => `\u0000${key}\u0000`;
const MARKS: RunValues = { token: MARK('token'), runId: MARK('runId'), pipelineName: MARK('pipelineName'), runName: MARK('runName'), recurringRunName: MARK('recurringRunName') };
// A marker as JSON.stringify writes it (`\u0000token\u0000`), inside any string value.
const MARK_IN_JSON = /\\u0000(token|runId|pipelineName|runName|recurringRunName)\\u0000/;
const cuts = new Map<string, string[]>();
const MAX_CUTS = 16;

function templateJson(x: Shape, v: RunValues): string | undefined {
  // A setting holding a marker's NUL could be cut in the wrong place: serialize that one afresh.
  if (x.url.includes('\u0000') || x.image.includes('\u0000')) return undefined;
  const key = `${x.mode}\n${x.url}\n${x.image}`;
  let parts = cuts.get(key);
  if (!parts) {
    parts = JSON.stringify(buildTemplate(x, MARKS)).split(MARK_IN_JSON);
    if (cuts.size >= MAX_CUTS) cuts.clear();
    cuts.set(key, parts);
  }
  let out = '';
  for (let i = 0; i < parts.length; i++) out += i % 2 === 0 ? parts[i] : JSON.stringify(v[parts[i] as keyof RunValues]).slice(1, -1);
  return out;
}
