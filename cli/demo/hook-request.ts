import { HOOK_TEMPLATE } from '../../common/injected-names.js';
import type { Template, Workflow } from '../../common/kfp/workflow-types.js';
import type { HookFiring } from './simulate-run.js';

/**
 * Turns one simulated hook firing into the HTTP request the injected notifier would send. Container
 * mode: the env Argo and the kubelet give the pod (with `{{…}}` and downward-API values filled in),
 * then the curl script's own `-H` and `--data-urlencode "field=${VAR}"` lines, read from the template.
 * http mode: Argo's substitution of the template's url, headers and body. Pure.
 */

export interface HookRequest {
  url: string;
  headers: Record<string, string>;
  /** application/x-www-form-urlencoded */
  body: string;
}

interface EnvVar {
  name?: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath?: string }; secretKeyRef?: { name?: string; key?: string } };
}

export type HookSecrets = Record<string, Record<string, string>>;

const SUBST = /\{\{\s*([^{}]+?)\s*\}\}/g;

function argoSubstitute(s: string, firing: HookFiring): string {
  const scope: Record<string, string> = { ...firing.globals };
  for (const [k, v] of Object.entries(firing.parameters)) scope[`inputs.parameters.${k}`] = v;
  return s.replace(SUBST, (whole, key: string) => scope[key] ?? whole);
}

/** What a hook pod's downward API shows: spec.podMetadata labels plus Argo's own label and annotation. */
function fieldRef(path: string, wf: Workflow, firing: HookFiring): string {
  const labels: Record<string, string> = {
    ...(wf.spec?.podMetadata?.labels ?? {}),
    'workflows.argoproj.io/workflow': firing.globals['workflow.name'] ?? '',
  };
  const annotations: Record<string, string> = {
    ...(wf.spec?.podMetadata?.annotations ?? {}),
    'workflows.argoproj.io/node-name': firing.podNodeName,
  };
  if (path === 'metadata.namespace') return firing.globals['workflow.namespace'] ?? '';
  const m = /^metadata\.(labels|annotations)\['([^']+)'\]$/.exec(path);
  if (!m) throw new Error(`unsupported fieldRef ${path}`);
  return (m[1] === 'labels' ? labels : annotations)[m[2] ?? ''] ?? '';
}

function notifierTemplate(wf: Workflow): Template {
  const tmpl = wf.spec?.templates?.find((t) => t.name === HOOK_TEMPLATE);
  if (!tmpl) throw new Error(`the Workflow has no ${HOOK_TEMPLATE} template: was it injected?`);
  return tmpl;
}

/** The container notifier's command line and the env its pod would get for this firing. */
export function hookPod(wf: Workflow, firing: HookFiring, secrets: HookSecrets = {}): { command: string[]; env: Record<string, string> } {
  const tmpl = notifierTemplate(wf);
  const container = (tmpl.container ?? {}) as { command?: string[]; args?: string[] };
  return { command: [...(container.command ?? []), ...(container.args ?? [])], env: podEnv(tmpl, wf, firing, secrets) };
}

function podEnv(tmpl: Template, wf: Workflow, firing: HookFiring, secrets: HookSecrets): Record<string, string> {
  const container = (tmpl.container ?? {}) as { env?: EnvVar[] };
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (!e.name) continue;
    if (e.value !== undefined) env[e.name] = argoSubstitute(e.value, firing);
    else if (e.valueFrom?.fieldRef?.fieldPath) env[e.name] = fieldRef(e.valueFrom.fieldRef.fieldPath, wf, firing);
    else if (e.valueFrom?.secretKeyRef) env[e.name] = secrets[e.valueFrom.secretKeyRef.name ?? '']?.[e.valueFrom.secretKeyRef.key ?? ''] ?? '';
  }
  return env;
}

function shellExpand(s: string, env: Record<string, string>): string {
  return s.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_w, name: string) => env[name] ?? '');
}

function containerRequest(tmpl: Template, wf: Workflow, firing: HookFiring, secrets: HookSecrets): HookRequest {
  const env = podEnv(tmpl, wf, firing, secrets);
  const script = ((tmpl.container ?? {}) as { args?: string[] }).args?.join('\n') ?? '';
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  for (const m of script.matchAll(/-H "([^":]+):\s*([^"]*)"/g)) headers[(m[1] ?? '').toLowerCase()] = shellExpand(m[2] ?? '', env);
  const form = new URLSearchParams();
  for (const m of script.matchAll(/--data-urlencode "([A-Za-z]+)=([^"]*)"/g)) form.append(m[1] ?? '', shellExpand(m[2] ?? '', env));
  const url = /"\$\{([A-Z_]+)\}"\s*\\?\s*\n?\s*\|\|/.exec(script);
  if (!url?.[1]) throw new Error('the notifier script names no URL');
  return { url: env[url[1]] ?? '', headers, body: form.toString() };
}

function httpRequest(tmpl: Template, firing: HookFiring, secrets: HookSecrets): HookRequest {
  const http = tmpl.http as { url?: string; body?: string; headers?: (EnvVar & { value?: string })[] };
  const headers: Record<string, string> = {};
  for (const h of http.headers ?? []) {
    if (!h.name) continue;
    const ref = h.valueFrom?.secretKeyRef;
    headers[h.name.toLowerCase()] = ref ? (secrets[ref.name ?? '']?.[ref.key ?? ''] ?? '') : argoSubstitute(h.value ?? '', firing);
  }
  return { url: argoSubstitute(http.url ?? '', firing), headers, body: argoSubstitute(http.body ?? '', firing) };
}

export function hookRequest(wf: Workflow, firing: HookFiring, secrets: HookSecrets = {}): HookRequest {
  const tmpl = notifierTemplate(wf);
  return tmpl.http ? httpRequest(tmpl, firing, secrets) : containerRequest(tmpl, wf, firing, secrets);
}
