import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseSubscribers, type ResolveSecret } from '../../../callback/subscribers/parse.js';
import type { Subscriber } from '../../../callback/types.js';

const SECRETS: Record<string, string> = { 'gh/token': 'Bearer ghp_secret123' };
const resolve: ResolveSecret = (ref) => SECRETS[`${ref.name}/${ref.key}`];
const parse = (data: Record<string, unknown>) => parseSubscribers(data, resolve);
const one = (data: Record<string, unknown>): Subscriber => {
  const r = parse(data);
  expect(r.errors).toEqual([]);
  return r.subscribers[0] as Subscriber;
};

describe('format keys in the ConfigMap', () => {
  it('accepts slack, teams, github and template', () => {
    expect(one({ s: { url: 'https://hooks.slack.com/services/T/B/x', format: 'slack' } }).format).toBe('slack');
    expect(one({ t: { url: 'https://prod-1.westus.logic.azure.com/workflows/abc', format: 'teams' } }).format).toBe('teams');
    const gh = one({ g: { url: 'https://api.github.com/repos/acme/ml/dispatches', format: 'github', headers: { Authorization: { secretKeyRef: { name: 'gh', key: 'token' } } } } });
    expect(gh.headers).toEqual({ authorization: 'Bearer ghp_secret123' });
    const tpl = one({ p: { url: 'https://events.pagerduty.com/v2/enqueue', format: 'template', template: '{"summary":"{{ Message }}"}' } });
    expect(tpl.contentType).toBe('application/json');
    expect(tpl.template?.render({ Message: 'a "quoted"\nline' })).toEqual({ ok: true, text: '{"summary":"a \\"quoted\\"\\nline"}' });
  });

  it('a GitHub Enterprise Server API base works', () => {
    const gh = one({ g: { url: 'https://ghe.example.com/api/v3/repos/acme/ml/dispatches', format: 'github', headers: { Authorization: 'Bearer x' } } });
    expect(gh.url).toBe('https://ghe.example.com/api/v3/repos/acme/ml/dispatches');
  });

  it('github: a URL that is not a dispatches URL, and a missing token, are config errors naming the subscriber', () => {
    const r = parse({ g: { url: 'https://api.github.com/repos/acme/ml/dispatch', format: 'github' } });
    expect(r.subscribers).toEqual([]);
    expect(r.errors).toEqual([
      'subscriber "g": format github needs a repository_dispatch url: https://api.github.com/repos/OWNER/REPO/dispatches, or https://HOST/api/v3/repos/OWNER/REPO/dispatches on GitHub Enterprise Server',
      'subscriber "g": format github needs headers.Authorization: "Bearer <token>", from a Secret ({ secretKeyRef: { name, key } })',
    ]);
  });

  it('template: an unknown field is refused when the config is read, naming the subscriber and the key', () => {
    const r = parse({ pd: { url: 'https://x.example/y', format: 'template', template: '{"summary":"{{ Mesage }}"}' } });
    expect(r.subscribers).toEqual([]);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/^subscriber "pd": template: template cannot be rendered: .*Mesage/);
  });

  it('template: syntax errors, file reads and a missing template are config errors', () => {
    const r = parse({
      a: { url: 'https://x.example/y', format: 'template', template: '{% if %}' },
      b: { url: 'https://x.example/y', format: 'template', template: '{% include "/etc/passwd" %}' },
      c: { url: 'https://x.example/y', format: 'template' },
    });
    expect(r.subscribers).toEqual([]);
    expect(r.errors[0]).toMatch(/^subscriber "a": template: template does not parse/);
    expect(r.errors[1]).toMatch(/^subscriber "b": template: /);
    expect(r.errors[1]).not.toMatch(/root:/);
    expect(r.errors[2]).toBe('subscriber "c": template is required for format template: the request body, with {{ Field }} for the event\'s fields (docs/subscribers.md)');
  });

  it('template: contentType picks the escaping; a bad one is refused; the keys belong to format template only', () => {
    const text = one({ m: { url: 'https://x.example/y', format: 'template', contentType: 'text/plain; charset=utf-8', template: 'run {{ RunName }}' } });
    expect(text.template?.render({ RunName: 'a "b"' })).toEqual({ ok: true, text: 'run a "b"' });
    const r = parse({
      bad: { url: 'https://x.example/y', format: 'template', contentType: 'text/plain\r\nX-Evil: 1', template: 'x' },
      stray: { url: 'https://x.example/y', format: 'slack', template: 'x', contentType: 'text/plain' },
    });
    expect(r.errors).toEqual([
      expect.stringMatching(/^subscriber "bad": contentType must be a media type/),
      'subscriber "stray": template is only used by format template',
      'subscriber "stray": contentType is only used by format template',
    ]);
  });

  it('an unknown format lists every format', () => {
    expect(parse({ x: { url: 'https://x.example/y', format: 'discord' } }).errors).toEqual([
      `subscriber "x": format must be one of json, cloudevents-structured, cloudevents-binary, slack, teams, github, template (got 'discord')`,
    ]);
  });
});

describe('a config reload', () => {
  it('re-parsing an unchanged template entry gives a deep-equal subscriber (config-watch.ts compares them to spot changes)', () => {
    const data = { pd: { url: 'https://x.example/y', format: 'template', template: '{"s":"{{ Message }}"}' } };
    expect(isDeepStrictEqual(parse(data).subscribers, parse(data).subscribers)).toBe(true);
    const edited = { pd: { ...data.pd, template: '{"s":"{{ RunName }}"}' } };
    expect(isDeepStrictEqual(parse(data).subscribers, parse(edited).subscribers)).toBe(false);
  });
});
