import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';

describe('kfp-notify (process)', () => {
  it('--help lists every command and exits 0', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['inject', 'webhook', 'callback', 'serve', 'demo', 'dlq', 'subscriber']) expect(r.stdout).toContain(`  ${c} `);
  });
  it('an unknown command exits 2 with a message', async () => {
    const r = await runCli(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command "frobnicate"');
  });
});
