import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { hookKeyFromSecret, mintHookToken } from '../../common/hook-token.js';
import { runCli } from '../helpers/cli.js';
import { newSigningSecret } from '../callback/engine/harness.js';
import { everyOutput, recordOutput, startCallbackProcess } from './helpers/callback-process.js';
import { acceptedIds, hookCallMix, hookClient, inParallel } from './helpers/hook-load.js';
import { leaks } from './helpers/secrets.js';
import { admin, deadLetters, fileFixtures, queueDepths, waitFor } from './helpers/setup.js';
import { deliveredCounts } from './helpers/subscriber-server.js';

/**
 * Secrets never reach the logs. One real `kfp-notify callback` process at --log-level trace (the most
 * it ever writes) is driven through every path that logs: startup, hook calls accepted and refused
 * (forged tokens of every kind), signed deliveries with a key rotation, an Authorization header, a
 * subscriber whose URL path is its credential, failures, a 410, dead letters, admin calls with a
 * wrong and the right token, `kfp-notify dlq`, config reloads that break (the secrets file too), and
 * shutdown. Then every byte it (and the CLI) wrote is searched for each secret.
 */

const { ws, subscribers } = fileFixtures('kfp-notify-secrets-');

const hex = (n: number) => randomBytes(n).toString('hex');

describe('secrets never reach the logs of a real kfp-notify callback process', () => {
  it('no hook token, hook key, admin token, signing secret, header value or credential URL path appears anywhere in its output at --log-level trace', async () => {
    const start = subscribers.start;
    const signed = await start(() => ({ status: 200 }));
    const authed = await start((g) => (g.headers.authorization === secretValues.authorization ? { status: 200 } : { status: 401 }));
    const failing = await start((_g, n) => (n < 3 ? { status: 500 } : { status: 410 }));
    const credentialUrl = await start(() => ({ status: 503 }));
    const secretValues = {
      'signing secret (new)': newSigningSecret(),
      'signing secret (old)': newSigningSecret(),
      authorization: `Bearer sub-token-${hex(16)}`,
      'api key header': `apikey-${hex(16)}`,
      'credential in a URL path': `T0${hex(8)}/B0${hex(8)}/${hex(12)}`,
      'credential in a URL query': `q${hex(12)}`,
    };
    const { dir, key } = ws.dataDir('secrets');
    const secretsFileData = {
      hooks: { signing: `${secretValues['signing secret (new)']} ${secretValues['signing secret (old)']}`, auth: secretValues.authorization, apikey: secretValues['api key header'] },
    };
    const subscriberData = {
      signed: { url: signed.url, signingKey: { secretKeyRef: { name: 'hooks', key: 'signing' } } },
      authed: { url: authed.url, headers: { Authorization: { secretKeyRef: { name: 'hooks', key: 'auth' } }, 'X-Api-Key': { secretKeyRef: { name: 'hooks', key: 'apikey' } } } },
      failing: { url: failing.url, retry: { schedule: [0.05, 0.05], jitter: 0 }, signingKey: { secretKeyRef: { name: 'hooks', key: 'signing' } } },
      'slack-like': { url: `${credentialUrl.url}/services/${secretValues['credential in a URL path']}?token=${secretValues['credential in a URL query']}`, retry: { schedule: [0.05], jitter: 0 } },
      audit: { type: 'log' },
    };
    const files = ws.subscribers('secrets', subscriberData, secretsFileData);
    const cb = await startCallbackProcess(['--data-dir', dir, '--log-level', 'trace', ...files]);
    const token = ws.adminToken(dir);

    // Hook calls: valid ones, and forgeries that carry real-looking tokens.
    const calls = hookCallMix(40, key, 'secret-run');
    const other = hookKeyFromSecret(`another-key-${hex(16)}`);
    const client = hookClient(cb.url, 8);
    const valid = await inParallel(calls, 8, (c) => client.post(c));
    expect(valid.filter((a) => 'error' in a || a.status !== 202)).toEqual([]);
    const forged = await inParallel(calls, 8, (c, i) =>
      client.post({
        body: i % 2 ? c.body : JSON.stringify({ ...Object.fromEntries(new URLSearchParams(c.body)), token: c.authorization.slice(7), authorization: c.authorization }),
        authorization: [
          `Bearer ${mintHookToken(key, { namespace: c.namespace, kfpRunId: `${c.runId}-not-this-one` })}`,
          `Bearer ${mintHookToken(other, { namespace: c.namespace, kfpRunId: c.runId })}`,
          `${c.authorization.slice(0, -3)}xyz`,
          `Basic ${Buffer.from(`hook:${c.authorization.slice(7)}`).toString('base64')}`,
        ][i % 4],
      }, i % 2 ? 'application/x-www-form-urlencoded' : 'application/json'),
    );
    expect(forged.filter((a) => 'error' in a || (a.status !== 401 && a.status !== 403 && a.status !== 400))).toEqual([]);
    // JSON bodies that carry the token as a field are still judged by the header alone.
    await client.close();
    const ids = valid.flatMap(acceptedIds);
    await waitFor('signed and authed deliveries', () => ids.filter((id) => !deliveredCounts(signed).has(id) || !deliveredCounts(authed).has(id)).length, (n) => n === 0);

    // Failures, a 410, dead letters; the admin API with a wrong token and the right one; the CLI.
    await waitFor('failing and slack-like to settle', () => queueDepths(cb.url, token), (d) => (d.failing ?? 0) === 0 && (d['slack-like'] ?? 0) === 0);
    expect((await admin(cb.url, `${token}x`, 'GET', '/v1/subscribers')).status).toBe(403);
    const subs = JSON.stringify((await admin(cb.url, token, 'GET', '/v1/subscribers')).body);
    expect(subs).not.toContain(secretValues['credential in a URL path']);
    expect((await deadLetters(cb.url, token)).length).toBeGreaterThan(0);
    expect((await admin(cb.url, token, 'POST', '/v1/subscribers/failing/enable')).body).toMatchObject({ wasDisabled: true });
    for (const args of [['list'], ['list', '-o', 'json'], ['replay', '--subscriber', 'failing']]) {
      const r = await runCli(['dlq', ...args, '--url', cb.url, '--data-dir', dir]);
      recordOutput(r.stdout + r.stderr);
      expect(r.code, r.stderr).toBe(0);
    }
    const badToken = `${dir}/wrong-admin-token`;
    writeFileSync(badToken, `${token.slice(0, -4)}abcd\n`);
    const denied = await runCli(['dlq', 'list', '--url', cb.url, '--admin-token-file', badToken]);
    recordOutput(denied.stdout + denied.stderr);
    expect(denied.code).toBe(1);

    // Reloads that fail: a subscriber entry naming a missing secret key, then a secrets file that is not YAML.
    writeFileSync(files[1] ?? '', JSON.stringify({ ...subscriberData, signed: { url: signed.url, signingKey: { secretKeyRef: { name: 'hooks', key: 'nope' } } } }));
    writeFileSync(files[3] ?? '', `hooks: {signing: "${secretValues['signing secret (new)']}", auth: [${secretValues.authorization}\n`);
    await waitFor('the rejected reload to be logged', () => cb.lines.filter((l) => l.msg === 'subscriber config rejected; keeping the last good one').length, (n) => n >= 1, 10_000);

    expect(await cb.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    const output = everyOutput();
    // The test is not vacuous: the process logged plenty, at trace level, about these very calls.
    expect(cb.lines.length).toBeGreaterThan(100);
    expect(cb.lines.some((l) => l.msg === 'hook call refused')).toBe(true);
    expect(cb.lines.some((l) => l.msg === 'delivery failed; will retry' && l.subscriber === 'slack-like')).toBe(true);
    expect(leaks(output, { ...secretValues, ...ws.secrets() })).toEqual([]);
    // ...and the search would have found one: a planted secret and a planted token are reported.
    expect(leaks(`${output}\n{"x":"${secretValues.authorization}"}\nBearer kn1.abcd`, secretValues)).toHaveLength(2);
    console.log(`[figures] secrets: ${cb.lines.length} log lines (${output.length} bytes) at trace level searched for ${Object.keys({ ...secretValues, ...ws.secrets() }).length} secrets and every kn1./whsec_ token: none found`);
  });
});
