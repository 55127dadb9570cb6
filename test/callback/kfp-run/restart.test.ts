import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { parseOrigin } from '../../../callback/kfp-run/origin.js';
import { loadAdminToken } from '../../../common/data-dir.js';
import { postHook } from '../../helpers/post-hook.js';
import { cleanups } from '../../helpers/cleanups.js';
import { startFakeKfpApi } from '../../helpers/fake-kfp-api.js';
import { until } from '../../callback/cluster/until.js';
import { startCallbackProcess } from '../engine/process.js';

// A real `kfp-notify callback` process, killed while KFP holds its create request (the run made, the
// answer not sent), then started again on the same data dir: the delivery is due again, finds the run
// by its trigger id and counts as delivered. KFP is the FAKE API server of test/helpers/fake-kfp-api.ts.

const c = cleanups('kfp-notify-kfp-restart-');
afterEach(() => c.run());

async function queueDepth(url: string, dataDir: string): Promise<number> {
  const res = await request(`${url}/v1/subscribers`, { headers: { authorization: `Bearer ${loadAdminToken({ dataDir, create: false })}` } });
  const body = (await res.body.json()) as { subscribers: { name: string; queueDepth: number }[] };
  return body.subscribers.reduce((n, s) => n + s.queueDepth, 0);
}

describe('kfp-run across a callback restart', () => {
  it('starts one run when the process dies mid-delivery after KFP made the run', async () => {
    const kfp = await startFakeKfpApi();
    c.push(() => kfp.close());
    const train = kfp.addPipeline({ displayName: 'train' });
    const evaluate = kfp.addPipeline({ displayName: 'evaluate', params: { upstream_run_id: 'STRING' } });
    const trainRun = kfp.addRun({ pipelineId: train.pipelineId, versionId: train.versionId, displayName: 'train 7' });
    kfp.hangNextCreates(1);

    const dir = c.tempDir();
    const dataDir = join(dir, 'data');
    const subscribers = join(dir, 'subscribers.yaml');
    writeFileSync(
      subscribers,
      [
        'evaluate: |',
        '  type: kfp-run',
        `  url: ${kfp.url}`,
        '  eventTypes: [WorkflowSucceeded]',
        '  pipelines: [train]',
        '  pipeline: evaluate',
        '  runName: "evaluate after {{ RunName }}"',
        '  parameters: { upstream_run_id: "{{ KfpRunId }}" }',
        '  timeout: 60s',
        '  retry: { schedule: [1, 1], jitter: 0 }',
        '',
      ].join('\n'),
    );
    const args = ['--data-dir', dataDir, '--subscribers', subscribers, '--retry-scale', '0.05'];
    const first = await startCallbackProcess(args);
    c.push(() => first.stop('SIGKILL'));
    const fields = {
      v: '1',
      event: 'workflow-exit',
      kfpRunId: trainRun,
      namespace: 'kubeflow-user',
      workflowName: 'train-abc12',
      workflowUid: 'uid-1',
      workflowStatus: 'Succeeded',
      exitHandlerStatus: '',
      failures: 'null',
      duration: '12',
      pipelineName: 'train',
      runName: 'train 7',
    };
    expect((await postHook(first.url, dataDir, fields)).status).toBe(202);
    await until('KFP to make the run', () => kfp.runs().some((r) => r.pipelineId === evaluate.pipelineId));
    expect(await first.stop('SIGKILL')).toBeNull();

    const second = await startCallbackProcess(args);
    c.push(() => second.stop());
    await until('the restarted callback to settle the delivery', async () => (await queueDepth(second.url, dataDir)) === 0, 20_000);
    const started = kfp.runs().filter((r) => r.pipelineId === evaluate.pipelineId);
    expect(started).toHaveLength(1);
    expect(started[0]).toMatchObject({ displayName: 'evaluate after train 7', parameters: { upstream_run_id: trainRun } });
    expect(parseOrigin(started[0]?.description)?.upstreamRun).toBe(trainRun);
    // Its stdout is a pipe, read apart from the HTTP answers: the line may arrive after the queue emptied.
    await until('the log line saying the run was found', () => second.lines.some((l) => l.msg === 'KFP run for this event already exists; counted as delivered'));
    expect(kfp.requests.filter((r) => r === 'POST /apis/v2beta1/runs')).toHaveLength(1);
  });
});
