import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCallbackFlags } from '../../../cli/callback.js';
import { UsageError } from '../../../cli/io.js';
import { runCli } from '../../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'kfp-notify-store-flags-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const creds = join(dir, 'user.creds');
writeFileSync(creds, 'not checked at parse time');

const parse = (args: string[], env: NodeJS.ProcessEnv = {}) => {
  const f = parseCallbackFlags(['--no-cluster', ...args], env);
  if (f === 'help') throw new Error('help');
  return f;
};

describe('callback --store and the NATS flags', () => {
  it('defaults to sqlite (or $KFP_NOTIFY_STORE); the watcher then runs without a lease', () => {
    expect(parse([]).store).toBe('sqlite');
    expect(parse([]).watchLease).toBeUndefined();
    expect(parse([], { KFP_NOTIFY_STORE: 'memory' }).store).toBe('memory');
  });

  it('nats://HOST:PORT[,HOST:PORT] gives the server list, defaults and the watcher lease', () => {
    const f = parse(['--store', 'nats://nats-0.nats:4222,nats-1.nats,[::1]:4223', '--nats-creds', creds, '--nats-replicas', '3', '--nats-lease', '45s']);
    expect(f.store).toEqual({
      nats: { servers: ['nats://nats-0.nats:4222', 'nats://nats-1.nats:4222', 'nats://[::1]:4223'], prefix: 'kfp-notify', replicas: 3, storage: 'file', leaseMs: 45_000, credsFile: creds },
    });
    expect(f.watchLease).toBe('kfp-notify-watcher');
    expect(parse(['--store', 'nats://n:4222', '--watch-lease', 'none']).watchLease).toBeUndefined();
  });

  it.each([
    [['--store', 'redis://x'], '--store must be sqlite, memory or nats://HOST:PORT[,HOST:PORT...] (got redis://x)'],
    [['--store', 'nats://user:pw@n:4222'], '--store: put NATS credentials in --nats-creds or --nats-token-file, not in the URL'],
    [['--store', 'nats://n:99999'], '--store: "n:99999" is not HOST:PORT'],
    [['--nats-replicas', '3'], '--nats-replicas only applies with --store nats://...'],
    [['--store', 'nats://n', '--nats-replicas', '2'], '--nats-replicas must be 1, 3 or 5 (got 2)'],
    [['--store', 'nats://n', '--nats-storage', 'disk'], '--nats-storage must be file or memory (got disk)'],
    [['--store', 'nats://n', '--nats-lease', '100ms'], '--nats-lease must be a duration of at least 1s such as 30s or 2m (got 100ms)'],
    [['--store', 'nats://n', '--nats-creds', '/nonexistent/x.creds'], '--nats-creds: no such file /nonexistent/x.creds'],
    [['--store', 'nats://n', '--nats-tls-cert', creds], '--nats-tls-cert and --nats-tls-key go together'],
    [['--store', 'nats://n', '--watch-lease', 'Not_A_Name'], '--watch-lease must be a Kubernetes object name or none (got Not_A_Name)'],
  ])('%j is a usage error', (args, msg) => {
    expect(() => parse(args)).toThrow(new UsageError(msg));
  });

  it('the CLI exits 2 with the reason for a bad --store', async () => {
    const r = await runCli(['callback', '--no-cluster', '--data-dir', dir, '--store', 'nats://']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--store must be sqlite, memory or nats://HOST:PORT[,HOST:PORT...] (got nats://)');
  });
});
