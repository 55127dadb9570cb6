import { readFileSync } from 'node:fs';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { KFP_RUN_KEYS } from '../../../callback/kfp-run/target.js';
import { nextChain, originLine, parseOrigin, runDescription, triggerId, triggerMarker } from '../../../callback/kfp-run/origin.js';
import { createRunBodyV1, createRunBodyV2, defaultRunName, filterValue, renderRun } from '../../../callback/kfp-run/request.js';
import { compileTemplate } from '../../../callback/template.js';
import { nextDelay } from '../../../callback/retry.js';
import { route } from '../../../callback/route.js';
import { parseSubscribers } from '../../../callback/subscribers/parse.js';
import { recurringRunNameOf } from '../../../common/kfp/kfp-meta.js';
import { makeEvent } from '../engine/events.js';
import { eventsFromWorkflow } from '../../../callback/status-events.js';
import { normalizeHookCall } from '../../../callback/normalize.js';
import { hookKeyFromSecret } from '../../../common/hook-token.js';
import { defaultInjectOptions, injectWorkflow } from '../../../webhook/inject/index.js';
import { admittedWorkflow, withStatus, type Wf } from '../cluster/argo-status.js';
import { simulatedHookCalls } from '../cluster/hook-sim.js';
import { snapshot } from '../core/sample.js';

const compile = (s: string) => {
  const c = compileTemplate(s, 'none');
  return c.ok ? c.template : c.error;
};
const noSecrets = () => undefined;

describe('kfp-run origin line', () => {
  it('gives one trigger id per subscriber and event, and tells subscribers apart', () => {
    expect(triggerId('evaluate', 'evt_1')).toBe(triggerId('evaluate', 'evt_1'));
    expect(triggerId('evaluate', 'evt_1')).not.toBe(triggerId('report', 'evt_1'));
    expect(triggerId('evaluate', 'evt_1')).not.toBe(triggerId('evaluate', 'evt_2'));
    expect(triggerId('a', 'b')).toMatch(/^trg_[0-9a-f]{32}$/);
  });

  it('reads back what it writes, after a sentence for people', () => {
    const o = { trigger: 'trg_abc', event: 'evt_1', upstreamRun: 'run-9', rootRun: 'run-1', chain: ['p-train', 'p-eval'] };
    const text = runDescription(o, { pipelineName: 'train', runName: 'nightly train' });
    expect(text.split('\n')[0]).toBe('Started by kfp-notify after nightly train (run run-9).');
    expect(text).toContain(triggerMarker('trg_abc'));
    expect(parseOrigin(text)).toEqual(o);
    expect(originLine(o)).toBe('kfp-notify-origin: trigger=trg_abc event=evt_1 upstream-run=run-9 root-run=run-1 chain=p-train,p-eval');
    expect(parseOrigin('a run someone started by hand')).toBeUndefined();
    expect(parseOrigin(undefined)).toBeUndefined();
  });

  it('starts a chain at a run no trigger started, and refuses a pipeline the chain already ran', () => {
    expect(nextChain('run-1', { runId: 'run-1', pipelineId: 'p-train' }, 'p-eval')).toEqual({ ok: true, rootRun: 'run-1', chain: ['p-train', 'p-eval'] });
    expect(nextChain('run-x', undefined, 'p-eval')).toEqual({ ok: true, rootRun: 'run-x', chain: ['p-eval'] });
    const evalRun = { runId: 'run-2', description: originLine({ trigger: 't', event: 'e', upstreamRun: 'run-1', rootRun: 'run-1', chain: ['p-train', 'p-eval'] }) };
    expect(nextChain('run-2', evalRun, 'p-report')).toEqual({ ok: true, rootRun: 'run-1', chain: ['p-train', 'p-eval', 'p-report'] });
    const loop = nextChain('run-2', evalRun, 'p-train');
    expect(loop.ok).toBe(false);
    if (!loop.ok) expect(loop.reason).toContain('trigger loop: pipeline p-train already ran in the chain started by run run-1');
    // A pipeline that starts itself is the shortest loop.
    expect(nextChain('run-1', { runId: 'run-1', pipelineId: 'p-train' }, 'p-train').ok).toBe(false);
  });
});

describe('kfp-run request building', () => {
  const target = { apiVersion: 'v2beta1' as const, pipeline: 'evaluate', parameters: { upstream_run_id: { template: '{{ KfpRunId }}' }, epochs: { value: 3 }, tags: { value: ['a'] } } };
  const event = makeEvent({ KfpRunId: 'run-1', RunName: 'train 7', PipelineName: 'train', EventType: 'WorkflowSucceeded' });

  it('renders parameters over the event, keeping literal values typed', () => {
    const r = renderRun({ ...target, runName: 'evaluate {{ RunName | upcase }}' }, event, compile);
    expect(r).toEqual({ ok: true, run: { displayName: 'evaluate TRAIN 7', parameters: { upstream_run_id: 'run-1', epochs: 3, tags: ['a'] } } });
  });

  it('names the run after its pipeline and its upstream run when runName is absent, and refuses an empty name', () => {
    expect(defaultRunName(target, event)).toBe('evaluate after train 7 run-1');
    expect(renderRun({ ...target, runName: '{% if false %}x{% endif %}' }, event, compile)).toEqual({ ok: false, error: 'runName rendered empty; KFP refuses a run without a name' });
  });

  it('writes the v2beta1 body with only run.proto fields', () => {
    const body = createRunBodyV2({ run: { displayName: 'n', parameters: { a: 1 } }, description: 'd', pipelineId: 'p', versionId: 'v', experimentId: 'e', serviceAccount: 'sa' });
    expect(body).toEqual({
      display_name: 'n',
      description: 'd',
      experiment_id: 'e',
      pipeline_version_reference: { pipeline_id: 'p', pipeline_version_id: 'v' },
      runtime_config: { parameters: { a: 1 } },
      service_account: 'sa',
    });
  });

  it('writes the v1beta1 body with string parameters and resource references', () => {
    const body = createRunBodyV1({ run: { displayName: 'n', parameters: { a: 1, b: 'x' } }, description: 'd', pipelineId: 'p', versionId: 'v', experimentId: 'e' });
    expect(body).toEqual({
      name: 'n',
      description: 'd',
      pipeline_spec: { parameters: [{ name: 'a', value: '1' }, { name: 'b', value: 'x' }] },
      resource_references: [
        { key: { type: 'EXPERIMENT', id: 'e' }, relationship: 'OWNER' },
        { key: { type: 'PIPELINE_VERSION', id: 'v' }, relationship: 'CREATOR' },
      ],
    });
  });

  it('names the filter operation as each API version does, encoded once (the query encodes it again)', () => {
    const v2 = JSON.parse(decodeURIComponent(filterValue('v2beta1', [{ key: 'display_name', op: 'EQUALS', value: 'a+b' }]))) as unknown;
    expect(v2).toEqual({ predicates: [{ key: 'display_name', operation: 'EQUALS', string_value: 'a+b' }] });
    const v1 = JSON.parse(decodeURIComponent(filterValue('v1beta1', [{ key: 'name', op: 'IS_SUBSTRING', value: 'x' }]))) as unknown;
    expect(v1).toEqual({ predicates: [{ key: 'name', op: 'IS_SUBSTRING', string_value: 'x' }] });
  });
});

describe('kfp-run subscriber keys', () => {
  it('parses a full kfp-run subscriber', () => {
    const { subscribers, errors } = parseSubscribers(
      {
        evaluate: {
          type: 'kfp-run',
          url: 'http://ml-pipeline.kubeflow:8888',
          eventTypes: ['WorkflowSucceeded'],
          pipelines: ['train'],
          recurringRuns: ['nightly-*'],
          pipeline: 'evaluate',
          pipelineVersion: 'v2',
          experiment: 'chains',
          namespace: 'team-a',
          runName: 'evaluate {{ RunName }}',
          parameters: { upstream_run_id: '{{ KfpRunId }}', epochs: 3, empty: '' },
          serviceAccount: 'pipeline-runner',
          apiVersion: 'v1beta1',
          tokenFile: '/var/run/secrets/kubeflow/pipelines/token',
          headers: { 'X-Team': { secretKeyRef: { name: 's', key: 'k' } } },
        },
      },
      (ref) => (ref.name === 's' ? 'secret-value' : undefined),
    );
    expect(errors).toEqual([]);
    expect(subscribers[0]).toMatchObject({
      type: 'kfp-run',
      url: 'http://ml-pipeline.kubeflow:8888',
      recurringRuns: ['nightly-*'],
      headers: { 'x-team': 'secret-value' },
      kfpRun: {
        apiVersion: 'v1beta1',
        pipeline: 'evaluate',
        pipelineVersion: 'v2',
        experiment: 'chains',
        namespace: 'team-a',
        runName: 'evaluate {{ RunName }}',
        parameters: { upstream_run_id: { template: '{{ KfpRunId }}' }, epochs: { value: 3 }, empty: { value: '' } },
        serviceAccount: 'pipeline-runner',
        tokenFile: '/var/run/secrets/kubeflow/pipelines/token',
      },
    });
  });

  it('refuses a bad kfp-run subscriber with every reason, templates checked against the event fields', () => {
    const { subscribers, errors } = parseSubscribers(
      { bad: { type: 'kfp-run', runName: '{{ KfpRunID }}', parameters: { 'a b': 'x', ok: '{{ Nope }}' }, apiVersion: 'v3' } },
      noSecrets,
    );
    expect(subscribers).toEqual([]);
    expect(errors).toEqual([
      'subscriber "bad": url is required for type kfp-run',
      'subscriber "bad": pipeline is required for type kfp-run',
      'subscriber "bad": apiVersion must be one of v2beta1, v1beta1 (got "v3")',
      expect.stringMatching(/^subscriber "bad": runName: template cannot be rendered: .*KfpRunID/),
      'subscriber "bad": parameters.a b: not a valid KFP parameter name',
      expect.stringMatching(/^subscriber "bad": parameters\.ok: template cannot be rendered: .*Nope/),
    ]);
  });

  it('keeps kfp-run keys to kfp-run subscribers', () => {
    const { errors } = parseSubscribers({ web: { url: 'http://x', pipeline: 'p' } }, noSecrets);
    expect(errors).toEqual([expect.stringMatching(/^subscriber "web": unknown key 'pipeline'/)]);
  });
});

describe('recurring runs', () => {
  it('names the ScheduledWorkflow from its ownerReference, else the label, else nothing', () => {
    const owner = { apiVersion: 'kubeflow.org/v1beta1', kind: 'ScheduledWorkflow', name: 'nightly-train', uid: 'u' };
    const label = { 'scheduledworkflows.kubeflow.org/scheduledWorkflowName': 'from-label' };
    expect(recurringRunNameOf({ metadata: { ownerReferences: [{ kind: 'Pod', name: 'x' }, owner], labels: label } })).toBe('nightly-train');
    expect(recurringRunNameOf({ metadata: { labels: label } })).toBe('from-label');
    expect(recurringRunNameOf({ metadata: { ownerReferences: [{ kind: 'Workflow', name: 'x' }] } })).toBe('');
    expect(recurringRunNameOf({})).toBe('');
  });

  it('routes by recurringRuns globs; a one-off run matches only *', () => {
    const { subscribers } = parseSubscribers(
      { nightly: { type: 'log', recurringRuns: ['nightly-*'] }, any: { type: 'log', recurringRuns: '*' }, all: { type: 'log' } },
      noSecrets,
    );
    const names = (recurring: string) => route(makeEvent({ RecurringRunName: recurring }), subscribers).map((s) => s.name);
    expect(names('nightly-train')).toEqual(['all', 'any', 'nightly']);
    expect(names('weekly-train')).toEqual(['all', 'any']);
    expect(names('')).toEqual(['all', 'any']);
  });
});

describe('RecurringRunName on both paths', () => {
  const injectOpts = defaultInjectOptions({ hookKey: hookKeyFromSecret('recurring-test-hook-key-0123456789') });
  const T0 = '2025-06-03T10:00:05Z';

  /** basic.yaml as a recurring run made it, running: the root node exists, so the running hook fired. */
  function running(meta: (m: Wf['metadata']) => void): Wf {
    const wf = admittedWorkflow('kfp-v1-compiler/basic.yaml', { name: 'save-most-frequent-x7k2p', runId: '3f6a2c1e-6b1d-4a43-9a55-0d5c0c1f2b7e' });
    meta(wf.metadata);
    const r = injectWorkflow(wf, injectOpts);
    expect(r.outcome, r.reason).toBe('injected');
    const w = wf.metadata.name;
    return withStatus(r.workflow as Wf, { phase: 'Running', startedAt: T0, nodes: [{ name: w, type: 'DAG', templateName: 'save-most-frequent', phase: 'Running', children: [`${w}.hooks.kfp-notify-running`], startedAt: T0 }] });
  }

  function bothPaths(wf: Wf): string[] {
    const hook = simulatedHookCalls(wf).flatMap((fields) => {
      const r = normalizeHookCall(fields, { receivedAt: new Date(T0) });
      if (!r.ok) throw new Error(r.reason);
      return r.events;
    });
    const watcher = eventsFromWorkflow(wf, { now: T0 });
    expect(hook.map((e) => e.EventId)).toEqual(watcher.map((e) => e.EventId));
    expect(hook.length).toBeGreaterThan(0);
    return [...hook, ...watcher].map((e) => e.RecurringRunName);
  }

  it('is the ScheduledWorkflow owner on the hook path (read at admission) and the watcher path alike', () => {
    const wf = running((m) => {
      m.ownerReferences = [{ apiVersion: 'kubeflow.org/v1beta1', kind: 'ScheduledWorkflow', name: 'nightly-word-count', uid: 'swf', controller: true }];
    });
    expect(new Set(bothPaths(wf))).toEqual(new Set(['nightly-word-count']));
  });

  it('falls back to the scheduledWorkflowName label, and is empty for a one-off run', () => {
    const labelled = running((m) => {
      m.labels = { ...m.labels, 'scheduledworkflows.kubeflow.org/scheduledWorkflowName': 'weekly' };
    });
    expect(new Set(bothPaths(labelled))).toEqual(new Set(['weekly']));
    expect(new Set(bothPaths(running(() => undefined)))).toEqual(new Set(['']));
  });

  it('comes from the fetched Workflow label when a hook from an older injector does not send it', () => {
    const call = { v: '1', event: 'workflow-running', kfpRunId: 'r', namespace: 'ns', workflowName: 'wf', workflowUid: 'u', hookNodeName: 'wf.hooks.kfp-notify-running' };
    const labels = { 'scheduledworkflows.kubeflow.org/scheduledWorkflowName': 'weekly' };
    const r = normalizeHookCall(call, { receivedAt: new Date(T0), workflow: snapshot({ uid: 'u', labels }) });
    expect(r.ok && r.events[0]?.RecurringRunName).toBe('weekly');
  });
});

describe('a permanent outcome', () => {
  it('is dead at once, however many retries the schedule has left', () => {
    const policy = { schedule: [1, 2, 3], jitter: 0 };
    expect(nextDelay({ attempt: 1, result: { ok: false, status: 400, permanent: true, durationMs: 1 }, policy, rand: () => 0 })).toEqual({ action: 'dead' });
    expect(nextDelay({ attempt: 1, result: { ok: false, permanent: true, error: 'loop', durationMs: 1 }, policy, rand: () => 0 })).toEqual({ action: 'dead' });
    expect(nextDelay({ attempt: 1, result: { ok: false, status: 400, durationMs: 1 }, policy, rand: () => 0 })).toEqual({ action: 'retry', delayMs: 1000 });
  });
});

describe('docs/kfp-trigger.md', () => {
  const text = readFileSync(new URL('../../../docs/kfp-trigger.md', import.meta.url), 'utf8');

  it('shows a chain subscriber that parses to the documented target', () => {
    const block = /<!-- example: configmap chain -->\n```yaml\n([\s\S]*?)\n```/.exec(text)?.[1];
    const data = (load(block ?? '') as { data: Record<string, unknown> }).data;
    const r = parseSubscribers(data, noSecrets);
    expect(r.errors).toEqual([]);
    expect(r.subscribers[0]?.kfpRun).toEqual({
      apiVersion: 'v2beta1',
      pipeline: 'evaluate',
      experiment: 'chains',
      runName: 'evaluate {{ RunName }}',
      parameters: { upstream_run_id: { template: '{{ KfpRunId }}' }, epochs: { value: 3 } },
    });
  });

  it('lists every kfp-run key', () => {
    for (const key of KFP_RUN_KEYS) expect(text).toContain(`| \`${key}\` |`);
  });
});
