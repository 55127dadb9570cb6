import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../engine/receiver.js';
import { startDashboardFixture, type DashboardFixture } from './dashboard-fixture.js';

/** The dashboard's HTTP surface against a real callback process: sessions, cross-site refusals, bad input. */

let fx: DashboardFixture;
beforeAll(async () => {
  fx = await startDashboardFixture();
});
afterAll(async () => fx?.close());

async function call(method: 'GET' | 'POST', path: string, opts: { cookie?: string; origin?: string | null; site?: string; csrf?: string; form?: Record<string, string> } = {}) {
  const headers: Record<string, string> = {};
  if (opts.cookie) headers.cookie = opts.cookie;
  const origin = opts.origin === undefined ? fx.url : opts.origin;
  if (method === 'POST' && origin !== null) headers.origin = origin;
  if (opts.site) headers['sec-fetch-site'] = opts.site;
  if (opts.csrf) headers['x-csrf-token'] = opts.csrf;
  let body: string | undefined;
  if (opts.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(opts.form).toString();
  }
  const res = await request(`${fx.url}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) as Record<string, unknown> };
}

async function login(operator = 'alice'): Promise<{ cookie: string; csrf: string }> {
  const res = await call('POST', '/ui/login', { form: { token: fx.adminToken, operator } });
  expect(res.status).toBe(303);
  const setCookie = String(res.headers['set-cookie']);
  const cookie = setCookie.split(';')[0] ?? '';
  const session = await call('GET', '/ui/api/session', { cookie });
  return { cookie, csrf: String(session.json().csrf) };
}

describe('dashboard over HTTP (real callback process)', () => {
  it('without a session: the login form, and every API call is a 401', async () => {
    const page = await call('GET', '/ui/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.text).toContain('action="/ui/login"');
    expect(page.text).not.toContain(fx.adminToken);
    for (const path of ['/ui/api/events', '/ui/api/subscribers', '/ui/api/deliveries/1', '/ui/api/session']) {
      const r = await call('GET', path);
      expect([path, r.status]).toEqual([path, 401]);
      expect(r.json().error).toMatch(/not logged in/);
    }
    const forged = await call('POST', '/ui/api/subscribers/gone/enable', { cookie: 'kfpn_session=guessed' });
    expect(forged.status).toBe(401);
  });

  it('serves its script and stylesheet with their content types and a strict CSP on every response', async () => {
    const js = await call('GET', '/ui/app.js');
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.text).toContain('textContent');
    expect(js.text).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
    const css = await call('GET', '/ui/app.css');
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
    for (const r of [js, css, await call('GET', '/ui/'), await call('GET', '/ui/api/events')]) {
      expect(r.headers['content-security-policy']).toMatch(/default-src 'none'; script-src 'self'; style-src 'self'/);
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['cache-control']).toBe('no-store');
    }
  });

  it('login: a wrong token is a 403 with the form again; the right one sets an HttpOnly SameSite=Strict cookie that is not the token', async () => {
    const wrong = await call('POST', '/ui/login', { form: { token: 'nope' } });
    expect(wrong.status).toBe(403);
    expect(wrong.text).toContain('That is not the admin token.');
    expect(wrong.headers['set-cookie']).toBeUndefined();
    const ok = await call('POST', '/ui/login', { form: { token: fx.adminToken, operator: 'alice' } });
    expect(ok.status).toBe(303);
    expect(ok.headers.location).toBe('/ui/');
    const setCookie = String(ok.headers['set-cookie']);
    expect(setCookie).toMatch(/^kfpn_session=[\w-]{43}; Path=\/ui\/; HttpOnly; SameSite=Strict; Max-Age=28800$/); // plain HTTP: no Secure
    expect(setCookie).not.toContain(fx.adminToken);
    const page = await call('GET', '/ui/', { cookie: setCookie.split(';')[0] ?? '' });
    expect(page.text).toContain('src="/ui/app.js"');
    expect(page.text).not.toContain(fx.adminToken);
  });

  it('login from another site (forged Origin, Sec-Fetch-Site cross-site, no Origin) is refused even with the right token', async () => {
    for (const opts of [{ origin: 'https://evil.example' }, { site: 'cross-site' }, { origin: null }]) {
      const r = await call('POST', '/ui/login', { ...opts, form: { token: fx.adminToken } });
      expect(r.status).toBe(403);
      expect(r.json().error).toMatch(/cross-site request refused/);
      expect(r.headers['set-cookie']).toBeUndefined();
    }
  });

  it('an action needs the session, this origin and the CSRF token; it is logged with who did it', async () => {
    expect(await fx.postHook({ kfpRunId: 'run-http-gone' })).toBe(202);
    await until(() => fx.receivers.gone.received.length >= 1, 'the 410 from gone');
    const { cookie, csrf } = await login('alice');
    await until(async () => ((await call('GET', '/ui/api/subscribers', { cookie })).json().subscribers as { name: string; disabled: unknown }[]).some((s) => s.name === 'gone' && s.disabled !== null), 'gone disabled');
    const path = '/ui/api/subscribers/gone/enable';
    const refused = [
      await call('POST', path, { cookie }), // no CSRF token
      await call('POST', path, { cookie, csrf: 'x'.repeat(43) }),
      await call('POST', path, { cookie, csrf, origin: 'http://evil.example' }),
      await call('POST', path, { cookie, csrf, site: 'same-site' }),
      await call('POST', path, { cookie, csrf, origin: null }),
    ];
    expect(refused.map((r) => r.status)).toEqual([403, 403, 403, 403, 403]);
    const subs = (await call('GET', '/ui/api/subscribers', { cookie })).json().subscribers as { name: string; disabled: unknown }[];
    expect(subs.find((s) => s.name === 'gone')?.disabled).not.toBeNull();
    const ok = await call('POST', path, { cookie, csrf, site: 'same-origin' });
    expect(ok.status).toBe(200);
    expect(ok.json()).toEqual({ name: 'gone', enabled: true, wasDisabled: true });
    await until(() => fx.cb.lines.some((l) => l.msg === 'dashboard: subscriber re-enabled'), 'the audit log line');
    const line = fx.cb.lines.find((l) => l.msg === 'dashboard: subscriber re-enabled');
    expect(line).toMatchObject({ operator: 'alice', subscriber: 'gone', wasDisabled: true, ip: '127.0.0.1' });
    expect(line?.session).toMatch(/^[0-9a-f]{12}$/);
    expect(JSON.stringify(fx.cb.lines)).not.toContain(fx.adminToken);
  });

  it('logout ends the session server-side: the old cookie is refused afterwards', async () => {
    const { cookie, csrf } = await login('bob');
    expect((await call('POST', '/ui/logout', { cookie, csrf })).status).toBe(200);
    expect((await call('GET', '/ui/api/events', { cookie })).status).toBe(401);
  });

  it('a bad search or id is a 400 with the reason', async () => {
    const { cookie } = await login();
    const cases: [string, RegExp][] = [
      ['/ui/api/events?eventType=Nope', /eventType must be one of WorkflowRunning/],
      ['/ui/api/events?limit=0', /limit must be an integer from 1 to 500/],
      ['/ui/api/events?from=yesterday', /from must be ms since the epoch or an ISO 8601 date-time/],
      ['/ui/api/events?before=-3', /before must be an integer/],
      ['/ui/api/deliveries/abc', /delivery id must be an integer/],
    ];
    for (const [path, reason] of cases) {
      const r = await call('GET', path, { cookie });
      expect([path, r.status]).toEqual([path, 400]);
      expect(r.json().error).toMatch(reason);
    }
    expect((await call('GET', '/ui/api/deliveries/999999', { cookie })).status).toBe(404);
  });

  it('the events search finds an event by run id, with its deliveries, and the delivery shows its attempts with secrets masked', async () => {
    expect(await fx.postHook({ kfpRunId: 'run-http-1' })).toBe(202);
    await until(() => fx.receivers.ops.received.some((r) => r.body.includes('run-http-1')), 'the delivery to ops');
    const { cookie } = await login();
    const page = (await call('GET', '/ui/api/events?runId=run-http-1', { cookie })).json() as { events: { event: { KfpRunId: string }; deliveries: { id: number; subscriber: string }[] }[] };
    expect(page.events.map((e) => e.event.KfpRunId)).toEqual(['run-http-1']);
    const toOps = page.events[0]?.deliveries.find((d) => d.subscriber === 'ops');
    let attempts: { request?: { headers: Record<string, string> } }[] = [];
    await until(async () => {
      attempts = (await call('GET', `/ui/api/deliveries/${toOps?.id}`, { cookie })).json().attempts as typeof attempts;
      return attempts.length === 1;
    }, 'the attempt to be logged');
    const headers = attempts[0]?.request?.headers ?? {};
    expect(headers['x-api-key']).toBe('[masked]');
    expect(headers['webhook-signature']).toBe('[masked]');
    expect(headers['x-team']).toBe('ml');
    const received = fx.receivers.ops.received.find((r) => r.body.includes('run-http-1'));
    expect(received?.headers['x-api-key']).toBe(fx.apiKey);
  });
});
