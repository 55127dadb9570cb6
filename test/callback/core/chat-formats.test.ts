import { describe, expect, it } from 'vitest';
import { buildEvent } from '../../../callback/event-id.js';
import { formatDelivery } from '../../../callback/formats/index.js';
import { EVENT_TYPE_NAMES, GITHUB_API_VERSION } from '../../../callback/formats/github.js';
import { SLACK_LIMITS, slackEscape } from '../../../callback/formats/slack.js';
import { EVENT_TYPES, KFP_EVENT_FIELDS, type KfpEvent } from '../../../callback/types.js';
import { blockKitProblems, rawSlackControlChars } from './block-kit.js';
import { TEAMS_MAX_BYTES, teamsProblems } from './adaptive-card.js';
import { EXAMPLE_FACTS, exampleEvent } from './sample.js';

const LINKED: KfpEvent[] = EXAMPLE_FACTS.map(exampleEvent);
const UNLINKED: KfpEvent[] = EXAMPLE_FACTS.map(buildEvent);
const body = (e: KfpEvent, format: 'slack' | 'teams' | 'github'): Record<string, unknown> => JSON.parse(formatDelivery(e, { format }).body) as Record<string, unknown>;

/** The longest event the callback can make: every free-text field at its limit, full of characters chat services treat specially. */
function worstCase(type: KfpEvent['EventType']): KfpEvent {
  const e = LINKED.find((x) => x.EventType === type) as KfpEvent;
  const wide = (n: number) => '€<&>"*_`'.repeat(Math.ceil(n / 8)).slice(0, n);
  const node = type === 'WorkflowNodeFailed' || type === 'WorkflowNodeSucceeded';
  const failed = type.endsWith('Failed');
  return {
    ...e,
    RunName: wide(512),
    PipelineName: wide(512),
    NodeName: node ? wide(512) : '',
    Message: failed ? `Failed node ${e.ArgoNodeName}: ${wide(4096 - e.ArgoNodeName.length - 14)}`.slice(0, 4096) : e.Message,
  };
}

describe('slack: a body Slack incoming webhooks (and Mattermost) accept', () => {
  it.each(EVENT_TYPES)('%s: Block Kit shape and limits, a fallback text, the run name first, a button to the run', (type) => {
    const e = LINKED.find((x) => x.EventType === type) as KfpEvent;
    const b = body(e, 'slack');
    expect(blockKitProblems(b)).toEqual([]);
    expect(b.text).toMatch(new RegExp(`^${e.RunName} `));
    expect(JSON.stringify(b.blocks)).toContain(`"url":"${e.RunUrl}"`);
  });

  it.each(EVENT_TYPES)('%s at its longest still meets every limit, cut with an ellipsis, with &, <, > escaped', (type) => {
    const e = worstCase(type);
    const b = body(e, 'slack') as { text: string; blocks: { type: string; text?: { type: string; text: string }; fields?: { text: string }[] }[] };
    expect(blockKitProblems(b)).toEqual([]);
    expect(b.blocks[0]?.text?.text.length).toBe(SLACK_LIMITS.header);
    expect(b.blocks[0]?.text?.text.endsWith('…')).toBe(true);
    expect(rawSlackControlChars(b.text)).toBe(false);
    for (const block of b.blocks) {
      if (block.text?.type === 'mrkdwn') expect(rawSlackControlChars(block.text.text)).toBe(false);
      for (const f of block.fields ?? []) expect(rawSlackControlChars(f.text)).toBe(false);
    }
    if (type.endsWith('Failed')) expect(b.blocks[1]?.text?.text.length).toBeLessThanOrEqual(SLACK_LIMITS.sectionText);
  });

  it('the check itself refuses what Slack refuses (so the tests above can fail)', () => {
    const good = body(LINKED[2] as KfpEvent, 'slack') as { text: string; blocks: Record<string, unknown>[] };
    expect(blockKitProblems({ ...good, text: '' })).toContain('text must be a non-empty string (the fallback; Mattermost refuses a body without it)');
    expect(blockKitProblems({ ...good, blocks: [{ type: 'header', text: { type: 'mrkdwn', text: 'x' } }] })).toContain('blocks[0].text.type must be plain_text');
    expect(blockKitProblems({ ...good, blocks: [{ type: 'header', text: { type: 'plain_text', text: 'x'.repeat(151) } }] })).toHaveLength(1);
    expect(blockKitProblems({ ...good, blocks: [{ type: 'section', fields: Array.from({ length: 11 }, () => ({ type: 'mrkdwn', text: 'x' })) }] })).toHaveLength(1);
    expect(blockKitProblems({ ...good, blocks: Array.from({ length: 51 }, () => ({ type: 'divider' })) })).toEqual(['51 blocks, over 50']);
    expect(rawSlackControlChars('a < b')).toBe(true);
    expect(rawSlackControlChars(slackEscape('a < b & c'))).toBe(false);
  });
});

describe('teams: a Workflows webhook message whose Adaptive Card validates against the version it declares', () => {
  it.each(EVENT_TYPES)('%s: valid for Microsoft\'s parser, ≤28 KB, Action.OpenUrl to the run', (type) => {
    const e = LINKED.find((x) => x.EventType === type) as KfpEvent;
    const text = formatDelivery(e, { format: 'teams' }).body;
    expect(teamsProblems(text)).toEqual([]);
    expect(text).toContain(`{"type":"Action.OpenUrl","title":"Open run in KFP","url":"${e.RunUrl}"}`);
    const card = (JSON.parse(text) as { attachments: { content: { body: { text?: string }[] } }[] }).attachments[0]?.content;
    expect(card?.body[0]?.text?.startsWith(e.RunName)).toBe(true);
  });

  it.each(EVENT_TYPES)('%s at its longest stays valid and under 28 KB', (type) => {
    const text = formatDelivery(worstCase(type), { format: 'teams' }).body;
    expect(teamsProblems(text)).toEqual([]);
    expect(Buffer.byteLength(text)).toBeLessThan(TEAMS_MAX_BYTES);
    expect(text).toContain('…');
  });

  it("the validator refuses what Teams refuses: elements beyond the declared version, unknown properties, Action.Submit, oversize", () => {
    const good = JSON.parse(formatDelivery(LINKED[0] as KfpEvent, { format: 'teams' }).body) as { attachments: { content: Record<string, unknown> }[] };
    const withCard = (change: (c: Record<string, unknown>) => void): string => {
      const copy = structuredClone(good);
      change(copy.attachments[0]?.content as Record<string, unknown>);
      return JSON.stringify(copy);
    };
    expect(teamsProblems(withCard((c) => (c.body as unknown[]).push({ type: 'Table', columns: [] })))).toContain('parser: Unknown element type "Table". Fallback will be used if present.');
    expect(teamsProblems(withCard((c) => ((c.body as Record<string, unknown>[])[0] = { type: 'TextBlock', text: 'x', colour: 'Good' })))[0]).toMatch(/does not serialize back/);
    expect(teamsProblems(withCard((c) => (c.actions = [{ type: 'Action.Submit', title: 'x' }])))).toContain('Action.Submit is not supported by Teams webhooks');
    expect(teamsProblems(withCard((c) => (c.version = '1.6')))).toContain('card version 1.6: Teams supports 1.5 or earlier');
    expect(teamsProblems(withCard((c) => ((c.body as Record<string, unknown>[])[0] = { type: 'TextBlock', text: 'x'.repeat(TEAMS_MAX_BYTES) })))[0]).toMatch(/over Teams' 28 KB/);
  });
});

describe('github: a repository_dispatch', () => {
  it.each(EVENT_TYPES)('%s: event_type, ≤10 client_payload properties carrying every event field, GitHub headers', (type) => {
    const e = LINKED.find((x) => x.EventType === type) as KfpEvent;
    const d = formatDelivery(e, { format: 'github' });
    expect(d.headers).toEqual({ 'content-type': 'application/json', accept: 'application/vnd.github+json', 'x-github-api-version': GITHUB_API_VERSION, 'user-agent': 'kfp-notify' });
    const b = JSON.parse(d.body) as { event_type: string; client_payload: Record<string, unknown> & { Details: Record<string, string> } };
    expect(Object.keys(b)).toEqual(['event_type', 'client_payload']);
    expect(b.event_type).toBe(EVENT_TYPE_NAMES[type]);
    expect(b.event_type.length).toBeLessThanOrEqual(100);
    expect(Object.keys(b.client_payload).length).toBeLessThanOrEqual(10);
    const flat = { ...b.client_payload, ...b.client_payload.Details } as Record<string, unknown>;
    delete flat.Details;
    expect(Object.keys(flat).sort()).toEqual([...KFP_EVENT_FIELDS].sort());
    for (const k of KFP_EVENT_FIELDS) expect(flat[k]).toBe(e[k]);
    expect(Buffer.byteLength(JSON.stringify(worstCase(type)))).toBeLessThan(64 * 1024);
  });

  it('event types: kfp- and the EventType in kebab case, one each', () => {
    expect(EVENT_TYPE_NAMES).toEqual({
      WorkflowRunning: 'kfp-workflow-running',
      WorkflowSucceeded: 'kfp-workflow-succeeded',
      WorkflowFailed: 'kfp-workflow-failed',
      WorkflowNodeSucceeded: 'kfp-workflow-node-succeeded',
      WorkflowNodeFailed: 'kfp-workflow-node-failed',
    });
  });
});

describe('without --kfp-ui-url there is no link and no broken URL', () => {
  it.each(EVENT_TYPES)('%s', (type) => {
    const e = UNLINKED.find((x) => x.EventType === type) as KfpEvent;
    expect(e.RunUrl).toBe('');
    const slack = body(e, 'slack') as { text: string; blocks: { type: string }[] };
    expect(blockKitProblems(slack)).toEqual([]);
    expect(slack.blocks.map((b) => b.type)).not.toContain('actions');
    const teams = formatDelivery(e, { format: 'teams' }).body;
    expect(teamsProblems(teams)).toEqual([]);
    for (const text of [JSON.stringify(slack), teams]) {
      expect(text).not.toMatch(/runs\/details|undefined|Open run in KFP|"url"/);
    }
  });

  it('an event stored before RunUrl existed formats the same as one without a link', () => {
    const e = UNLINKED[3] as KfpEvent;
    const { RunUrl: _dropped, ...old } = e;
    for (const format of ['json', 'slack', 'teams', 'github'] as const) {
      expect(formatDelivery(old as KfpEvent, { format }).body).toBe(formatDelivery(e, { format }).body);
    }
  });
});
