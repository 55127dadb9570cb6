import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseSubscribers, type ResolveSecret } from '../../../callback/subscribers/parse.js';
import { durationMs } from '../../../callback/subscribers/duration.js';
import type { SecretRef, Subscriber } from '../../../callback/types.js';

const KEY_A = `whsec_${randomBytes(32).toString('base64')}`;
const KEY_B = `whsec_${randomBytes(24).toString('base64')}`;
/** Stands in for the Secret watch: the Secret kfp-notify-subscribers and its keys. */
const SECRETS: Record<string, Record<string, string>> = {
  'kfp-notify-subscribers': { teams: KEY_A, rotating: `${KEY_B} ${KEY_A}\n`, token: 'Bearer s3cr3t', plain: 'not-a-whsec-value', short: 'whsec_c2hvcnQ=' },
};
const resolve: ResolveSecret = (ref: SecretRef) => SECRETS[ref.name]?.[ref.key];

const STANDARD = { schedule: [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400], jitter: 0.2 };

function one(data: Record<string, unknown>): Subscriber {
  const r = parseSubscribers(data, resolve);
  expect(r.errors).toEqual([]);
  expect(r.subscribers).toHaveLength(1);
  return r.subscribers[0] as Subscriber;
}

describe("kfp-event-handler's ConfigMap works unchanged", () => {
  it('`name: URI` is a JSON, unsigned, POST subscriber with the defaults', () => {
    // The example from kfp-event-handler.yaml's kfp-event-handler-config.
    expect(one({ 'teams-notifier': 'http://kfpteamsnotifier-svc:8000/notify' })).toEqual({
      name: 'teams-notifier',
      type: 'http',
      url: 'http://kfpteamsnotifier-svc:8000/notify',
      format: 'json',
      headers: {},
      timeoutMs: 15_000,
      maxConcurrency: 4,
      retry: STANDARD,
    });
  });

  it('a URI written as a YAML block (trailing newline) still works', () => {
    expect(one({ ci: 'https://ci.example.com/hooks/kfp?token=abc&x=1\n' }).url).toBe('https://ci.example.com/hooks/kfp?token=abc&x=1');
  });
});

describe('the object form', () => {
  const full = {
    url: 'https://hooks.example.com/kfp',
    type: 'http',
    eventTypes: ['WorkflowFailed', 'WorkflowNodeFailed'],
    namespaces: ['team-*'],
    pipelines: 'nightly',
    format: 'cloudevents-binary',
    headers: { 'X-Team': 'ml', Authorization: { secretKeyRef: { name: 'kfp-notify-subscribers', key: 'token' } } },
    signingKey: { secretKeyRef: { name: 'kfp-notify-subscribers', key: 'teams' } },
    timeout: '10s',
    maxConcurrency: 2,
    retry: { schedule: [1, '30s', '5m'], jitter: 0 },
  };
  const expected: Subscriber = {
    name: 'ops',
    type: 'http',
    url: 'https://hooks.example.com/kfp',
    eventTypes: ['WorkflowFailed', 'WorkflowNodeFailed'],
    namespaces: ['team-*'],
    pipelines: ['nightly'],
    format: 'cloudevents-binary',
    headers: { 'x-team': 'ml', authorization: 'Bearer s3cr3t' },
    secretHeaders: ['authorization'],
    signingKeyRef: { name: 'kfp-notify-subscribers', key: 'teams' },
    signingKeys: [KEY_A],
    timeoutMs: 10_000,
    maxConcurrency: 2,
    retry: { schedule: [1, 30, 300], jitter: 0 },
  };

  it('as a mapping (a YAML file, or a test)', () => {
    expect(one({ ops: full })).toEqual(expected);
  });

  it('as a string holding YAML (what a ConfigMap value is)', () => {
    const yaml = [
      'url: https://hooks.example.com/kfp',
      'type: http',
      'eventTypes: [WorkflowFailed, WorkflowNodeFailed]',
      'namespaces: ["team-*"]',
      'pipelines: nightly',
      'format: cloudevents-binary',
      'headers:',
      '  X-Team: ml',
      '  Authorization: {secretKeyRef: {name: kfp-notify-subscribers, key: token}}',
      'signingKey:',
      '  secretKeyRef: {name: kfp-notify-subscribers, key: teams}',
      'timeout: 10s',
      'maxConcurrency: 2',
      'retry: {schedule: [1, 30s, 5m], jitter: 0}',
    ].join('\n');
    expect(one({ ops: yaml })).toEqual(expected);
  });

  it('several space-separated secrets are a rotation: all kept, in order', () => {
    const s = one({ r: { url: 'http://r', signingKey: { secretKeyRef: { name: 'kfp-notify-subscribers', key: 'rotating' } } } });
    expect(s.signingKeys).toEqual([KEY_B, KEY_A]);
  });

  it.each([
    // [retry, policy]
    [{ schedule: 'standard' }, STANDARD],
    [{ schedule: 'none' }, { schedule: [], jitter: 0.2 }],
    [{ jitter: 0.5 }, { ...STANDARD, jitter: 0.5 }],
  ])('retry %j', (retry, policy) => {
    expect(one({ s: { url: 'http://s', retry } }).retry).toEqual(policy);
  });

  it.each([
    // [timeout, ms]
    ['500ms', 500],
    ['1.5s', 1500],
    ['2m', 120_000],
    [2500, 2500],
  ])('timeout %j → %i ms', (timeout, ms) => {
    expect(one({ s: { url: 'http://s', timeout } }).timeoutMs).toBe(ms);
  });

  it('a log subscriber needs no URL', () => {
    expect(one({ audit: 'type: log' })).toMatchObject({ name: 'audit', type: 'log', format: 'json' });
  });

  it('retryScale compresses every schedule (tests)', () => {
    const r = parseSubscribers({ a: 'http://a', b: { url: 'http://b', retry: { schedule: [10] } } }, resolve, { retryScale: 0.001 });
    expect(r.subscribers.map((s) => s.retry.schedule)).toEqual([STANDARD.schedule.map((x) => x * 0.001), [0.01]]);
  });
});

describe('errors name the subscriber and the key; one bad entry never drops the others', () => {
  it.each([
    // [value, error]
    ['ftp://files.example.com/x', `subscriber "bad": the URL 'ftp://files.example.com/x' must use http or https (got ftp)`],
    ['not-a-url', `subscriber "bad": the URL 'not-a-url' is not a valid URL`],
    ['', 'subscriber "bad": value must be a URL or a YAML mapping'],
    ['url: [unclosed', 'subscriber "bad": not a URL and not valid YAML: unexpected end of the stream within a flow collection (2:1)'],
    [{ url: 'http://x', eventTypes: ['WorkflowStarted'] }, `subscriber "bad": eventTypes: unknown event type 'WorkflowStarted' (expected WorkflowRunning, WorkflowSucceeded, WorkflowFailed, WorkflowNodeSucceeded, WorkflowNodeFailed)`],
    [{ url: 'http://x', format: 'xml' }, `subscriber "bad": format must be one of json, cloudevents-structured, cloudevents-binary, slack, teams, github, template (got 'xml')`],
    [{ url: 'http://x', retires: 3 }, `subscriber "bad": unknown key 'retires' (allowed: url, type, eventTypes, namespaces, pipelines, recurringRuns, format, template, contentType, headers, signingKey, timeout, maxConcurrency, retry, subject, token, credentials, user, password, tls)`],
    [{ url: 'http://x', retry: { schedule: [5], backoff: 2 } }, `subscriber "bad": retry: unknown key 'backoff' (allowed: schedule, jitter)`],
    [{ url: 'http://x', retry: { jitter: 2 } }, 'subscriber "bad": retry.jitter must be a number from 0 to 1 (got 2)'],
    [{ url: 'http://x', retry: { schedule: [5, 'soon'] } }, `subscriber "bad": retry.schedule[1] must be a delay from 0 to 7 days (got 'soon')`],
    [{ url: 'http://x', timeout: '10 minutes' }, `subscriber "bad": timeout must be a duration from 1ms to 300s ("10s", "500ms", or milliseconds) (got '10 minutes')`],
    [{ url: 'http://x', maxConcurrency: 0 }, 'subscriber "bad": maxConcurrency must be a whole number from 1 to 256 (got 0)'],
    [{ type: 'http' }, 'subscriber "bad": url is required for type http'],
    [{ type: 'log', url: 'http://x' }, 'subscriber "bad": url is not used by type log; remove it or use type http'],
    [{ type: 'kafka' }, `subscriber "bad": type must be one of http, log, nats, kfp-run (got 'kafka')`],
    [{ url: 'http://x', headers: { 'Content-Type': 'text/plain' } }, 'subscriber "bad": headers.Content-Type: set by kfp-notify itself, it cannot be overridden'],
    [{ url: 'http://x', headers: { 'X-A': 'a\r\nInjected: 1' } }, 'subscriber "bad": headers.X-A: the value contains a line break or NUL'],
    [{ url: 'http://x', headers: { 'X-A': 7 } }, 'subscriber "bad": headers.X-A must be a string or { secretKeyRef: { name, key } }'],
    [{ url: 'http://x', signingKey: 'whsec_inline' }, 'subscriber "bad": signingKey must be { secretKeyRef: { name, key } }'],
    [{ url: 'http://x', signingKey: { secretKeyRef: { name: 'kfp-notify-subscribers', key: 'missing' } } }, 'subscriber "bad": signingKey: secret kfp-notify-subscribers has no key missing'],
    [{ url: 'http://x', signingKey: { secretKeyRef: { name: 'kfp-notify-subscribers', key: 'plain' } } }, 'subscriber "bad": signingKey: secret kfp-notify-subscribers key plain, secret 1: a signing secret must start with whsec_'],
    [{ url: 'http://x', signingKey: { secretKeyRef: { name: 'kfp-notify-subscribers', key: 'short' } } }, 'subscriber "bad": signingKey: secret kfp-notify-subscribers key short, secret 1: a signing secret must decode to 24–64 bytes (got 5)'],
    [42, 'subscriber "bad": value must be a URL or a YAML mapping'],
  ])('%j', (value, error) => {
    const r = parseSubscribers({ good: 'http://good.example.com/', bad: value, other: { url: 'https://other.example.com/' } }, resolve);
    expect(r.errors).toEqual([error]);
    expect(r.subscribers.map((s) => s.name)).toEqual(['good', 'other']);
  });

  it('reports every problem of an entry at once', () => {
    const r = parseSubscribers({ bad: { url: 'gopher://x', format: 'xml', maxConcurrency: 1.5 } }, resolve);
    expect(r.errors).toHaveLength(3);
    expect(r.subscribers).toEqual([]);
  });

  it('a token in a bad URL never appears in an error', () => {
    const r = parseSubscribers({ bad: 'ftp://user:pa55@files.example.com/x?token=s3cr3t' }, resolve);
    expect(r.errors).toEqual([`subscriber "bad": the URL 'ftp://…@files.example.com/x?…' must use http or https (got ftp)`]);
  });

  it('a secret never appears in an error', () => {
    const r = parseSubscribers({ bad: { url: 'http://x', signingKey: { secretKeyRef: { name: 'kfp-notify-subscribers', key: 'token' } } } }, resolve);
    expect(r.errors.join('\n')).not.toContain('s3cr3t');
  });
});

describe('durationMs', () => {
  it.each([
    // [value, unit of a bare number, ms]
    ['250ms', 1, 250],
    ['3s', 1, 3000],
    ['1h', 1, 3_600_000],
    [7, 1000, 7000],
    ['7', 1000, 7000],
    [-1, 1, undefined],
    ['1d', 1, 86_400_000],
    ['1w', 1, undefined],
    [null, 1, undefined],
  ])('%j (numbers × %i) → %j', (value, unit, ms) => {
    expect(durationMs(value, unit)).toBe(ms);
  });
});
