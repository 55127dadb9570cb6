import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SubscriberConfigError, loadSubscriberFiles, watchSubscriberFiles, type FileSubscriberSource } from '../../../callback/subscribers/file-source.js';
import type { Subscriber } from '../../../callback/types.js';
import { capturingLogger, newSigningSecret } from './harness.js';
import { until } from './receiver.js';

describe('subscribers from a watched local file (real files, real fs.watch)', () => {
  let dir: string;
  let sources: FileSubscriberSource[];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'kfp-notify-subs-'));
    sources = [];
  });
  afterEach(() => {
    for (const s of sources) s.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const write = (name: string, text: string) => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };
  const names = (subs: readonly Subscriber[]) => subs.map((s) => s.name);

  it('reads ConfigMap-data-shaped YAML and resolves signing keys from the secrets file', async () => {
    const secret = newSigningSecret();
    const file = write('subs.yaml', 'legacy: http://127.0.0.1:1/kfp\nsigned:\n  url: https://example.com/hook\n  signingKey: { secretKeyRef: { name: hooks, key: signed } }\n');
    const secrets = write('secrets.yaml', `hooks:\n  signed: ${secret}\n`);
    const subs = await loadSubscriberFiles(file, secrets);
    expect(names(subs)).toEqual(['legacy', 'signed']);
    expect(subs.find((s) => s.name === 'signed')?.signingKeys).toEqual([secret]);
    expect(subs.find((s) => s.name === 'legacy')?.url).toBe('http://127.0.0.1:1/kfp');
  });

  it('accepts a whole ConfigMap manifest', async () => {
    const file = write('cm.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: kfp-event-handler-config }\ndata:\n  ops: http://127.0.0.1:1/a\n');
    expect(names(await loadSubscriberFiles(file))).toEqual(['ops']);
  });

  it('a signing key whose secret is missing is an error that names the subscriber and the key', async () => {
    const file = write('subs.yaml', 'signed:\n  url: https://example.com/hook\n  signingKey: { secretKeyRef: { name: hooks, key: signed } }\n');
    const secrets = write('secrets.json', '{"hooks": {"other": "x"}}');
    const err = await loadSubscriberFiles(file, secrets).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SubscriberConfigError);
    expect((err as SubscriberConfigError).errors).toEqual(['subscriber "signed": signingKey: secret hooks has no key signed']);
  });

  it('applies an edit without a restart, including a file renamed over the old one', async () => {
    const file = write('subs.yaml', 'a: http://127.0.0.1:1/a\n');
    const { log } = capturingLogger();
    const source = await watchSubscriberFiles({ file, log, debounceMs: 20 });
    sources.push(source);
    const seen: string[][] = [];
    source.onChange((subs) => seen.push(names(subs)));
    write('subs.yaml', 'a: http://127.0.0.1:1/a\nb: http://127.0.0.1:1/b\n');
    await until(() => seen.length === 1, 'the edit to apply');
    expect(names(source.current())).toEqual(['a', 'b']);
    write('subs.yaml.tmp', 'c: http://127.0.0.1:1/c\n');
    renameSync(join(dir, 'subs.yaml.tmp'), file);
    await until(() => seen.length === 2, 'the renamed file to apply');
    expect(seen).toEqual([['a', 'b'], ['c']]);
  });

  it('a bad edit keeps the last good set and logs every error; a later good edit applies', async () => {
    const file = write('subs.yaml', 'a: http://127.0.0.1:1/a\n');
    const { log, lines } = capturingLogger();
    const source = await watchSubscriberFiles({ file, log, debounceMs: 20 });
    sources.push(source);
    const seen: string[][] = [];
    source.onChange((subs) => seen.push(names(subs)));
    write('subs.yaml', 'a: http://127.0.0.1:1/a\nb:\n  url: http://127.0.0.1:1/b\n  maxConcurrency: lots\n');
    await until(() => lines.some((l) => l.msg === 'subscriber config rejected; keeping the last good one'), 'the rejection to be logged');
    const rejected = lines.find((l) => l.msg === 'subscriber config rejected; keeping the last good one');
    expect(rejected?.errors).toEqual([expect.stringContaining('subscriber "b": maxConcurrency must be a whole number')]);
    expect(names(source.current())).toEqual(['a']);
    expect(seen).toEqual([]);
    write('subs.yaml', 'b: http://127.0.0.1:1/b\n');
    await until(() => seen.length === 1, 'the good edit to apply');
    expect(names(source.current())).toEqual(['b']);
  });

  it('putting the good file back after a rejected edit logs that it is accepted again (nothing changed, so no reload)', async () => {
    const good = 'a: http://127.0.0.1:1/a\n';
    const file = write('subs.yaml', good);
    const { log, lines } = capturingLogger();
    const source = await watchSubscriberFiles({ file, log, debounceMs: 20 });
    sources.push(source);
    const seen: string[][] = [];
    source.onChange((subs) => seen.push(names(subs)));
    write('subs.yaml', 'a:\n  url: ftp://nope\n');
    await until(() => lines.some((l) => l.msg === 'subscriber config rejected; keeping the last good one'), 'the rejection');
    write('subs.yaml', good);
    await until(() => lines.some((l) => l.msg === 'subscriber config accepted again'), 'the acceptance');
    expect(lines.find((l) => l.msg === 'subscriber config accepted again')).toMatchObject({ level: 30, subscribers: ['a'], changed: false });
    expect(seen).toEqual([]);
    // Only after a rejection: a plain good edit logs a reload, not an acceptance.
    write('subs.yaml', 'b: http://127.0.0.1:1/b\n');
    await until(() => seen.length === 1, 'the next edit');
    expect(lines.filter((l) => l.msg === 'subscriber config accepted again')).toHaveLength(1);
  });

  it('a change to the secrets file applies too (a rotated signing key)', async () => {
    const [k1, k2] = [newSigningSecret(), newSigningSecret()];
    const file = write('subs.yaml', 'signed:\n  url: https://example.com/hook\n  signingKey: { secretKeyRef: { name: hooks, key: signed } }\n');
    const secrets = write('secrets.json', JSON.stringify({ hooks: { signed: k1 } }));
    const source = await watchSubscriberFiles({ file, secretsFile: secrets, log: capturingLogger().log, debounceMs: 20 });
    sources.push(source);
    write('secrets.json', JSON.stringify({ hooks: { signed: `${k2} ${k1}` } }));
    await until(() => source.current()[0]?.signingKeys?.length === 2, 'the rotated key to apply');
    expect(source.current()[0]?.signingKeys).toEqual([k2, k1]);
  });

  it('a broken secrets file is reported without quoting it (it holds secrets)', async () => {
    const secret = newSigningSecret();
    const file = write('subs.yaml', 'a: http://127.0.0.1:1/a\n');
    const secrets = write('secrets.yaml', `hooks:\n  signed: ${secret}\n bad: [unclosed ${secret}\n`);
    const err = await loadSubscriberFiles(file, secrets).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SubscriberConfigError);
    expect(String((err as Error).message)).toContain('not valid YAML or JSON');
    expect(String((err as Error).message)).not.toContain(secret.slice(6, 20));
  });
});
