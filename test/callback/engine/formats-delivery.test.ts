import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { loadHookKeys } from '../../../common/data-dir.js';
import { HOOK_PATH } from '../../../common/hook-contract.js';
import { mintHookToken } from '../../../common/hook-token.js';
import { silentLogger } from '../../../common/logger.js';
import { fixedSubscribers, startCallback, type CallbackRuntime } from '../../../callback/runtime.js';
import type { Ingest } from '../../../callback/ingest.js';
import { parseSubscribers } from '../../../callback/subscribers/parse.js';
import { compileTemplate } from '../../../callback/template.js';
import type { Subscriber } from '../../../callback/types.js';
import { blockKitProblems } from '../core/block-kit.js';
import { teamsProblems } from '../core/adaptive-card.js';
import { makeEvent } from './events.js';
import { httpSubscriber, newSigningSecret, startEngine } from './harness.js';
import { answer, startReceiver, until, type Receiver, type Respond } from './receiver.js';

const UI = 'https://kubeflow.example.com/_/pipeline';
const RUN = '7a1b2c3d-0000-4e5f-8a9b-0c1d2e3f4a5b';

/** Answers `first` to the first request, then `then` to every later one. */
const firstThen =
  (first: Respond, then: Respond): Respond =>
  (got, res, req) =>
    (got.n === 1 ? first : then)(got, res, req);

describe('slack, teams, github and template subscribers through a whole callback (real HTTP on 127.0.0.1, real SQLite)', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  async function receiver(respond: Respond): Promise<Receiver> {
    const rx = await startReceiver(respond);
    cleanups.push(() => rx.close());
    return rx;
  }

  it('a hook call and a watcher fact reach every format with RunUrl, GitHub headers and token, signatures', async () => {
    // What each service answers on success: Slack 200 "ok", Teams Workflows 202, GitHub 204, PagerDuty 202.
    const slack = await receiver((_g, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'));
    const teams = await receiver(answer(202));
    const github = await receiver(answer(204));
    const pagerduty = await receiver(answer(202));
    const signing = newSigningSecret();
    const secrets: Record<string, string> = { 'subs/slack-signing': signing, 'subs/github-token': 'Bearer ghp_test_token' };
    const parsed = parseSubscribers(
      {
        slack: { url: slack.url, format: 'slack', signingKey: { secretKeyRef: { name: 'subs', key: 'slack-signing' } } },
        teams: { url: teams.url, format: 'teams' },
        github: { url: github.url.replace(/\/hook$/, '/api/v3/repos/acme/ml/dispatches'), format: 'github', headers: { Authorization: { secretKeyRef: { name: 'subs', key: 'github-token' } } } },
        pagerduty: { url: pagerduty.url, format: 'template', template: '{"summary":"{{ RunName }}: {{ Message }}","link":"{{ RunUrl }}","action":"{% if EventType == "WorkflowFailed" %}trigger{% else %}resolve{% endif %}"}' },
      },
      (ref) => secrets[`${ref.name}/${ref.key}`],
    );
    expect(parsed.errors).toEqual([]);

    const dataDir = mkdtempSync(join(tmpdir(), 'kfp-notify-formats-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    let watcherIngest: Ingest | undefined;
    const rt: CallbackRuntime = await startCallback({
      dataDir,
      log: silentLogger(),
      listen: { host: '127.0.0.1', port: 0 },
      subscribers: fixedSubscribers(parsed.subscribers),
      kfpUiUrl: UI,
      cluster: { watch: (ingest) => ((watcherIngest = ingest), { stop: async () => undefined }) },
    });
    cleanups.push(() => rt.close());

    // The hook path: a KFP v2 run's exit hook, with Argo's failures list and no Workflow to read.
    const [key] = loadHookKeys({ dataDir, create: false });
    if (!key) throw new Error('no hook key');
    const failures = JSON.stringify([
      { displayName: 'executor', message: 'Error (exit code 1)', templateName: 'system-container-impl', phase: 'Failed', podName: 'p', finishedAt: '' },
      { displayName: 'train-model', message: "child 'x' failed", templateName: 'system-container-executor', phase: 'Failed', podName: '', finishedAt: '' },
    ]);
    const res = await request(`${rt.url}${HOOK_PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${mintHookToken(key, { namespace: 'team-a', kfpRunId: RUN })}` },
      body: JSON.stringify({ v: '1', event: 'workflow-exit', kfpRunId: RUN, namespace: 'team-a', workflowName: 'train-x7k2p', workflowStatus: 'Failed', failures, runName: 'nightly "train"', pipelineName: 'train' }),
    });
    expect(res.statusCode).toBe(202);
    await res.body.dump();
    // The watcher path: a fact the hooks did not report.
    const watched = { ...makeEvent({ seq: 7, KfpRunId: 'run-from-watcher', EventType: 'WorkflowNodeSucceeded' }), Source: 'watcher' as const };
    await watcherIngest?.([watched]);

    for (const rx of [slack, teams, github, pagerduty]) await until(() => rx.received.length === 2, 'two deliveries each');
    const link = `${UI}/#/runs/details/${RUN}`;
    const watchedLink = `${UI}/#/runs/details/run-from-watcher`;

    const slackBodies = slack.received.map((r) => JSON.parse(r.body) as { text: string });
    for (const b of slackBodies) expect(blockKitProblems(b)).toEqual([]);
    expect(slackBodies[0]?.text).toBe(`nightly "train" failed: train-model: Error (exit code 1) <${link}|Open run in KFP>`);
    expect(JSON.stringify(slackBodies[1])).toContain(watchedLink);
    for (const r of slack.received) {
      expect(new Webhook(signing).verify(r.body, r.headers as Record<string, string>)).toEqual(JSON.parse(r.body));
    }

    for (const r of teams.received) expect(teamsProblems(r.body)).toEqual([]);
    expect(teams.received[0]?.body).toContain(`"url":"${link}"`);
    expect(teams.received[1]?.body).toContain(`"url":"${watchedLink}"`);

    for (const r of github.received) {
      expect(r.url).toBe('/api/v3/repos/acme/ml/dispatches');
      expect(r.headers).toMatchObject({ authorization: 'Bearer ghp_test_token', accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28', 'user-agent': 'kfp-notify', 'content-type': 'application/json' });
      expect(r.headers['webhook-id']).toMatch(/^evt_/);
    }
    expect(JSON.parse(github.received[0]?.body ?? '{}')).toMatchObject({ event_type: 'kfp-workflow-failed', client_payload: { KfpRunId: RUN, RunUrl: link, Message: 'train-model: Error (exit code 1)', Details: { Source: 'hook' } } });
    expect(JSON.parse(github.received[1]?.body ?? '{}')).toMatchObject({ event_type: 'kfp-workflow-node-succeeded', client_payload: { RunUrl: watchedLink, Details: { Source: 'watcher' } } });

    expect(pagerduty.received.map((r) => [r.headers['content-type'], JSON.parse(r.body)])).toEqual([
      ['application/json', { summary: 'nightly "train": train-model: Error (exit code 1)', link, action: 'trigger' }],
      ['application/json', { summary: `${watched.RunName}: ${watched.Message}`, link: watchedLink, action: 'resolve' }],
    ]);
  });

  it('without --kfp-ui-url events carry RunUrl "" and the chat bodies no link', async () => {
    const slack = await receiver(answer(200));
    const dataDir = mkdtempSync(join(tmpdir(), 'kfp-notify-formats-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const rt = await startCallback({ dataDir, log: silentLogger(), listen: { host: '127.0.0.1', port: 0 }, subscribers: fixedSubscribers([httpSubscriber('slack', slack.url, { format: 'slack' })]) });
    cleanups.push(() => rt.close());
    await rt.ingest([makeEvent({ seq: 1 })]);
    await until(() => slack.received.length === 1, 'the delivery');
    const b = JSON.parse(slack.received[0]?.body ?? '{}') as { text: string; blocks: { type: string }[] };
    expect(blockKitProblems(b)).toEqual([]);
    expect(b.blocks.map((x) => x.type)).toEqual(['header', 'section']);
    expect(slack.received[0]?.body).not.toContain('runs/details');
  });
});

describe('the new formats retry and dead-letter like any subscriber (real worker, SQLite, HTTP)', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('Slack 429 then 200, GitHub 500 then 204: delivered on the second attempt; Teams 400 every time: dead letter', async () => {
    const slack = await startReceiver(firstThen(answer(429, { 'retry-after': '0' }), answer(200)));
    const github = await startReceiver(firstThen(answer(500), answer(204)));
    const teams = await startReceiver(answer(400));
    cleanups.push(() => slack.close(), () => github.close(), () => teams.close());
    const subs: Subscriber[] = [
      httpSubscriber('slack', slack.url, { format: 'slack' }),
      httpSubscriber('github', github.url, { format: 'github', headers: { authorization: 'Bearer t' } }),
      httpSubscriber('teams', teams.url, { format: 'teams' }),
    ];
    const e = startEngine(subs);
    cleanups.push(() => e.close());
    const event = makeEvent({ seq: 3, EventType: 'WorkflowNodeFailed', Message: 'Failed node wf-3.step-3: step-3: Error (exit code 1)' });
    await e.ingest([event]);
    await until(() => slack.received.length === 2 && github.received.length === 2, 'the retried deliveries');
    await until(async () => (await e.store.listDeadLetters()).length === 1, 'the dead letter');
    expect(slack.received[1]?.body).toBe(slack.received[0]?.body);
    expect(slack.received[1]?.headers['webhook-id']).toBe(event.EventId);
    expect(JSON.parse(github.received[1]?.body ?? '{}')).toMatchObject({ event_type: 'kfp-workflow-node-failed' });
    const [dead] = await e.store.listDeadLetters();
    expect(dead).toMatchObject({ subscriber: 'teams', eventId: event.EventId, attempts: 3, lastStatus: 400 });
    expect(teams.received).toHaveLength(3);
  });

  it('a template that cannot be rendered is a failed attempt with the reason, then a dead letter, never a stuck delivery', async () => {
    const rx = await startReceiver(answer(200));
    cleanups.push(() => rx.close());
    // Compiled without the config-time check (which would have refused it): renders fail at delivery.
    const compiled = compileTemplate('{"x":"{{ NotAField }}"}', 'json');
    if (!compiled.ok) throw new Error(compiled.error);
    const e = startEngine([httpSubscriber('tpl', rx.url, { format: 'template', template: compiled.template, contentType: 'application/json' })]);
    cleanups.push(() => e.close());
    await e.ingest([makeEvent({ seq: 4 })]);
    await until(async () => (await e.store.listDeadLetters()).length === 1, 'the dead letter');
    const [dead] = await e.store.listDeadLetters();
    expect(dead?.lastError).toMatch(/^cannot build the request: template cannot be rendered: .*NotAField/);
    expect(rx.received).toHaveLength(0);
  });
});
