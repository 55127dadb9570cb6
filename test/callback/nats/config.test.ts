import { describe, expect, it } from 'vitest';
import { parseSubscriber, parseSubscribers } from '../../../callback/subscribers/parse.js';
import type { SecretRef } from '../../../callback/types.js';

/** What a Secret would hold; values that must never appear in an error. */
const TOKEN = 's3cr3t-token-value';
const PASSWORD = 'pa55w0rd-value';
const SECRETS: Record<string, Record<string, string>> = {
  nats: {
    token: TOKEN,
    password: PASSWORD,
    creds: `-----BEGIN NATS USER JWT-----\neyJhbGciOi.fake.jwt\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\nSUAFAKESEED\n------END USER NKEY SEED------\n`,
    notCreds: 'just-some-text-not-a-creds-file',
    ca: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
  },
};
const resolve = (ref: SecretRef): string | undefined => SECRETS[ref.name]?.[ref.key];
const ref = (key: string) => ({ secretKeyRef: { name: 'nats', key } });

function parse(value: Record<string, unknown>) {
  return parseSubscriber('bus', { type: 'nats', url: 'nats://nats.nats:4222', subject: 'kfp.events', ...value }, resolve);
}

function problems(value: Record<string, unknown>): string[] {
  const r = parse(value);
  if (r.ok) throw new Error('expected a config error');
  return r.problems;
}

describe('type nats: config keys', () => {
  it('a minimal entry: servers, subject, default format cloudevents-binary', () => {
    const r = parse({});
    expect(r).toEqual({ ok: true, subscriber: expect.objectContaining({ type: 'nats', format: 'cloudevents-binary', nats: { servers: ['nats://nats.nats:4222'], subject: 'kfp.events' } }) });
  });

  it('a cluster URL, a subject template, a token, TLS with a CA, every key from YAML text as a ConfigMap holds it', () => {
    const yaml = [
      'type: nats',
      'url: nats://a.nats:4222, nats://b.nats:4222,tls://c.nats:4443',
      'subject: kfp.events.{{ Namespace }}.{{ EventType }}',
      'format: json',
      'token: { secretKeyRef: { name: nats, key: token } }',
      'tls: { ca: { secretKeyRef: { name: nats, key: ca } } }',
      'eventTypes: [WorkflowFailed]',
    ].join('\n');
    const r = parseSubscriber('bus', yaml, resolve);
    if (!r.ok) throw new Error(r.problems.join('; '));
    expect(r.subscriber.format).toBe('json');
    expect(r.subscriber.nats).toEqual({
      servers: ['nats://a.nats:4222', 'nats://b.nats:4222', 'tls://c.nats:4443'],
      subject: 'kfp.events.{{ Namespace }}.{{ EventType }}',
      auth: { token: TOKEN },
      tls: { ca: SECRETS.nats?.ca },
    });
  });

  it('user and password, and a .creds file', () => {
    expect(parse({ user: 'kfp', password: ref('password') })).toMatchObject({ ok: true, subscriber: { nats: { auth: { user: 'kfp', password: PASSWORD } } } });
    expect(parse({ credentials: ref('creds') })).toMatchObject({ ok: true, subscriber: { nats: { auth: { creds: SECRETS.nats?.creds } } } });
    // A tls:// URL alone requires TLS (with the system's CAs).
    expect(parse({ url: 'tls://nats.example.com:4222' })).toMatchObject({ ok: true, subscriber: { nats: { tls: {} } } });
  });

  it("format kfp-operator carries run ends only: it defaults eventTypes to them and refuses step events", () => {
    expect(parse({ format: 'kfp-operator' })).toMatchObject({ ok: true, subscriber: { eventTypes: ['WorkflowSucceeded', 'WorkflowFailed'] } });
    expect(parse({ format: 'kfp-operator', eventTypes: ['WorkflowFailed'] })).toMatchObject({ ok: true, subscriber: { eventTypes: ['WorkflowFailed'] } });
    expect(problems({ format: 'kfp-operator', eventTypes: ['WorkflowFailed', 'WorkflowNodeFailed'] })).toEqual([
      'format kfp-operator carries run ends only (WorkflowSucceeded, WorkflowFailed), as kfp-operator does; remove WorkflowNodeFailed from eventTypes or use another format',
    ]);
  });

  it.each([
    [{ url: undefined }, 'url is required for type nats: nats://host:port, comma-separated for a cluster'],
    [{ url: 'http://nats:4222' }, "url 'http://nats:4222' must use nats:// (or tls:// to require TLS), got http"],
    [{ url: 'nats://a:4222,,nats://b:4222' }, 'url has an empty entry: separate servers with single commas'],
    [{ url: 'nats://a:4222/some/path' }, "url 'nats://a:4222' must be nats://host:port, with no path or query"],
    [{ url: 'not a url' }, "url 'not a url' is not a valid URL (expected nats://host:port)"],
    [{ subject: undefined }, 'subject is required for type nats: a subject such as kfp.events, or a template such as kfp.events.{{ Namespace }}.{{ EventType }}'],
    [{ subject: 'kfp.*' }, "subject 'kfp.*': a subject to publish to cannot contain the wildcards * or >"],
    [{ subject: 'kfp..events' }, "subject 'kfp..events': a subject cannot have an empty token (a leading, trailing or double dot)"],
    [{ subject: 'kfp events' }, "subject 'kfp events': a subject cannot contain whitespace or control characters"],
    [{ format: 'slack' }, "format must be one of cloudevents-binary, cloudevents-structured, json, kfp-operator for type nats (got 'slack')"],
    [{ headers: { a: 'b' } }, 'headers is not used by type nats (NATS messages are not signed HTTP requests); remove it'],
    [{ token: ref('token'), user: 'x', password: ref('password') }, 'give one of token, credentials, or user and password (got token, user)'],
    [{ user: 'kfp' }, 'user needs password: { secretKeyRef: { name, key } }'],
    [{ password: ref('password') }, 'password needs user'],
    [{ token: ref('missing') }, 'token: secret nats has no key missing'],
    [{ token: 'inline-token' }, 'token must be { secretKeyRef: { name, key } }'],
    [{ credentials: ref('notCreds') }, 'credentials: the secret is not a NATS .creds file (a user JWT and an NKey seed block)'],
    [{ tls: { ca: ref('ca'), cert: ref('ca') } }, 'tls: cert and key go together (a client certificate needs its key)'],
    [{ tls: { verify: false } }, "tls: unknown key 'verify' (allowed: ca, cert, key)"],
    [{ tls: 'yes' }, 'tls must be true or a mapping with ca, cert and key (each { secretKeyRef: { name, key } })'],
  ])('%j → %s', (value, expected) => {
    expect(problems(value)).toEqual([expected]);
  });

  it('a template naming no event field, or that does not parse, is refused when the config is read', () => {
    expect(problems({ subject: 'kfp.{{ Namespaec }}' })).toEqual([expect.stringMatching(/^subject: template cannot be rendered: .*Namespaec/)]);
    expect(problems({ subject: 'kfp.{{ Namespace ' })).toEqual([expect.stringMatching(/^subject: template does not parse/)]);
    expect(problems({ subject: 'kfp.{{ Namespace | no_such_filter }}' })).toEqual([expect.stringMatching(/^subject: template does not parse: .*no_such_filter/)]);
    expect(problems({ subject: '{{ Namespace }}..x' })).toEqual([expect.stringContaining('empty token')]);
  });

  it('credentials in the URL are refused without repeating them', () => {
    const got = problems({ url: `nats://kfp:${PASSWORD}@nats:4222` });
    expect(got).toEqual(["url 'nats://nats:4222': put credentials in a Secret (token, credentials, or user and password), not in the URL"]);
    expect(JSON.stringify(parseSubscriber('bus', { type: 'nats', url: `nats://kfp:${PASSWORD}@bad host`, subject: 'x' }, resolve))).not.toContain(PASSWORD);
  });

  it('no error message ever quotes a secret value', () => {
    const all = parseSubscribers(
      {
        a: { type: 'nats', url: 'nats://n:4222', subject: 'x', credentials: ref('token') },
        b: { type: 'nats', url: 'nats://n:4222', subject: 'x', token: ref('token'), credentials: ref('creds') },
        c: { type: 'nats', url: 'nats://n:4222', subject: 'x', tls: { cert: ref('password') } },
      },
      resolve,
    );
    expect(all.errors.length).toBeGreaterThanOrEqual(3);
    for (const secret of [TOKEN, PASSWORD, 'SUAFAKESEED']) expect(all.errors.join('\n')).not.toContain(secret);
  });

  it('nats keys on another type, and a type nobody knows, are clear errors', () => {
    expect(parseSubscriber('hook', { url: 'https://h.example.com', subject: 'kfp.events' }, resolve)).toEqual({ ok: false, problems: ['subject is only used by type nats'] });
    expect(parseSubscriber('hook', { type: 'log', token: ref('token') }, resolve)).toEqual({ ok: false, problems: ['token is only used by type nats'] });
    expect(parseSubscriber('hook', { type: 'natz', url: 'nats://n:4222' }, resolve)).toEqual({ ok: false, problems: [expect.stringMatching(/^type must be one of http, log, nats/)] });
  });
});
