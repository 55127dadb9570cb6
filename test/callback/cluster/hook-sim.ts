/**
 * What Argo would make the injected hooks send, read off an injected Workflow and its status: which
 * hooks fire (a running hook once the entry node exists; a task's exit hook once its node is
 * Succeeded, Failed or Errored, per loop iteration, after the last retry; the exit wrapper's notify
 * task once the run ends), with the arguments the injector wrote and Argo's substitutions applied.
 * The watcher's tests compare its events with what normalize makes of these calls.
 */

type Rec = Record<string, unknown>;
const rec = (v: unknown): Rec => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Rec) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const text = (v: unknown): string => (typeof v === 'string' ? v : '');

const HOOK_TEMPLATE = 'kfp-notify-hook';
const FINISHED = ['Succeeded', 'Failed', 'Error'];

function params(args: unknown): Record<string, string> {
  return Object.fromEntries(arr(rec(args).parameters).map((p) => [text(rec(p).name), text(rec(p).value)]));
}

export function simulatedHookCalls(wf: Rec): Record<string, string>[] {
  const meta = rec(wf.metadata);
  const spec = rec(wf.spec);
  const status = rec(wf.status);
  const name = text(meta.name);
  const templates = arr(spec.templates).map(rec);
  const nodes = Object.values(rec(status.nodes)).map(rec);
  const byId = new Map(nodes.map((n) => [text(n.id), n]));
  const retryTries = new Set(nodes.filter((n) => n.type === 'Retry').flatMap((n) => arr(n.children).map(text)));

  // The per-run values the hook template bakes in or reads from the downward API.
  const hookTemplate = templates.find((t) => t.name === HOOK_TEMPLATE);
  const env = Object.fromEntries(arr(rec(hookTemplate?.container).env).map((e) => [text(rec(e).name), text(rec(e).value)]));
  const base = {
    v: env.HOOK_V ?? '1',
    kfpRunId: text(rec(meta.labels)['pipeline/runid']),
    namespace: text(meta.namespace),
    workflowName: name,
    workflowUid: text(meta.uid),
    pipelineName: env.HOOK_PIPELINE_NAME ?? '',
    runName: env.HOOK_RUN_NAME ?? '',
    recurringRunName: env.HOOK_RECURRING_RUN_NAME ?? '',
  };
  const substitute = (value: string, self: { task: string; phase: string } | undefined): string =>
    value
      .replace(/\{\{(tasks|steps)\.([^.}]+)\.status\}\}/g, (whole, _scope: string, task: string) => (self && task === self.task ? self.phase : whole))
      .replaceAll('{{workflow.status}}', text(status.phase))
      .replaceAll('{{workflow.failures}}', '"null"')
      .replaceAll('{{workflow.duration}}', '42.000000');
  const call = (args: unknown, hookNodeName: string, self?: { task: string; phase: string }): Record<string, string> => {
    const p = Object.fromEntries(Object.entries(params(args)).map(([k, v]) => [k, substitute(v, self)]));
    return { ...base, ...p, hookNodeName };
  };

  const calls: Record<string, string>[] = [];
  const root = nodes.find((n) => n.name === name);
  for (const [hookName, hook] of Object.entries(rec(spec.hooks))) {
    if (hookName === 'exit' || rec(hook).template !== HOOK_TEMPLATE || !root) continue;
    calls.push(call(rec(hook).arguments, `${name}.hooks.${hookName}`));
  }
  for (const n of nodes) {
    if (n.type === 'TaskGroup' || retryTries.has(text(n.id))) continue;
    const dag = templates.find((t) => t.name === byId.get(text(n.boundaryID))?.templateName);
    const taskName = text(n.displayName).split('(')[0];
    const task = arr(rec(dag?.dag).tasks).map(rec).find((t) => t.name === taskName);
    if (!task) continue;
    const exitHook = rec(rec(task.hooks).exit);
    if (exitHook.template === HOOK_TEMPLATE && FINISHED.includes(text(n.phase))) {
      calls.push(call(exitHook.arguments, `${text(n.name)}.onExit`, { task: taskName ?? '', phase: text(n.phase) }));
    }
    // The exit wrapper's `notify` task is itself a notifier call.
    if (task.template === HOOK_TEMPLATE) calls.push(call(task.arguments, text(n.name)));
  }
  return calls;
}
