import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { hookKeyFromSecret } from '../../common/hook-token.js';
import { parseDocuments } from '../../common/yaml-docs.js';
import { DEFAULT_CALLBACK_URL, DEFAULT_IMAGE, defaultInjectOptions } from '../../webhook/inject/options.js';
import {
  ConfigError,
  checkSettings,
  loadInjectOptions,
  mergeSettings,
  parseInjectorConfig,
  watchInjectOptions,
  type InjectOptionsSource,
} from '../../webhook/injector-config.js';
import { cleanups as testCleanups } from '../helpers/cleanups.js';

const KEY_A = 'first-hook-key-aaaaaaaaaaaaaaaa';
const KEY_B = 'second-hook-key-bbbbbbbbbbbbbbb';

const cleanups = testCleanups('kfp-notify-injector-config-');
afterEach(cleanups.run);
const tempDir = cleanups.tempDir;

const CONFIG = `# mounted from the kfp-notify-injector ConfigMap
callbackUrl: http://kfp-notify-callback.kfp-notify.svc.cluster.local:8080
argoVersion: "3.7.3"
mode: container
sizeLimitBytes: 900000
image: registry.example/curl@sha256:0123
`;

describe('parseInjectorConfig', () => {
  it('reads every key of the ConfigMap file', () => {
    expect(parseInjectorConfig(CONFIG, 'config.yaml')).toEqual({
      callbackUrl: 'http://kfp-notify-callback.kfp-notify.svc.cluster.local:8080',
      argoVersion: '3.7.3',
      mode: 'container',
      sizeLimitBytes: 900000,
      image: 'registry.example/curl@sha256:0123',
    });
  });

  it('reads the config.yaml of the shipped ConfigMap (manifests/base/injector-configmap.yaml)', () => {
    const [cm] = parseDocuments(readFileSync(new URL('../../manifests/base/injector-configmap.yaml', import.meta.url), 'utf8'));
    const text = (cm as { data: Record<string, string> }).data['config.yaml'] ?? '';
    const settings = parseInjectorConfig(text, 'config.yaml');
    expect(Object.keys(settings).sort()).toEqual(['argoVersion', 'callbackUrl', 'image', 'mode', 'sizeLimitBytes']);
    expect(typeof settings.argoVersion).toBe('string');
    expect(() => defaultInjectOptions({ ...settings, hookKey: hookKeyFromSecret(KEY_A) })).not.toThrow();
  });

  it('treats an empty file as all defaults, and a digit string as a byte count', () => {
    expect(parseInjectorConfig('\n# nothing set\n', 'config.yaml')).toEqual({});
    expect(parseInjectorConfig('sizeLimitBytes: "2048"\n', 'config.yaml')).toEqual({ sizeLimitBytes: 2048 });
  });

  // [ file text, words the error must contain ]
  it.each([
    ['callbackURL: http://x:8080\n', 'config.yaml: key "callbackURL": unknown key (known keys: callbackUrl, argoVersion, mode, sizeLimitBytes, image, stepHooks)'],
    ['argoVersion: 3.4\n', 'config.yaml: key "argoVersion": must be a quoted version string such as "3.4.17", got number 3.4'],
    ['mode: pod\n', 'config.yaml: key "mode": must be "container" or "http", got "pod"'],
    ['sizeLimitBytes: -1\n', 'config.yaml: key "sizeLimitBytes": must be a positive whole number of bytes'],
    ['sizeLimitBytes: 1Mi\n', 'config.yaml: key "sizeLimitBytes"'],
    ['stepHooks: some\n', 'config.yaml: key "stepHooks": must be one of all, failed, none, got "some"'],
    ['image: [curl]\n', 'config.yaml: key "image": must be a container image reference string, got list'],
    ['- callbackUrl: http://x:8080\n', 'document 1 is a list'],
    ['mode: http\n---\nmode: container\n', 'expected one YAML document, found 2'],
    ['mode: [unclosed\n', 'not valid YAML or JSON'],
  ])('rejects %j, naming the key', (text, words) => {
    expect(() => parseInjectorConfig(text, 'config.yaml')).toThrow(words);
  });

  it('reports every bad key at once', () => {
    expect(() => parseInjectorConfig('mode: pod\nsizeLimitBytes: 0\n', 'c.yaml')).toThrow(/key "mode".*\n.*key "sizeLimitBytes"/);
  });
});

describe('checkSettings and mergeSettings', () => {
  it('names the flag when a flag value has the wrong shape', () => {
    expect(() => checkSettings({ sizeLimitBytes: 'lots' }, (k) => (k === 'sizeLimitBytes' ? '--size-limit' : k))).toThrow('--size-limit: must be a positive whole number of bytes, got "lots"');
  });

  it('lets a given flag win and leaves file values that no flag overrides', () => {
    const file = { callbackUrl: 'http://file:8080', mode: 'container' as const, sizeLimitBytes: 5 };
    expect(mergeSettings(file, { callbackUrl: 'http://flag:8080', mode: undefined })).toEqual({ callbackUrl: 'http://flag:8080', mode: 'container', sizeLimitBytes: 5 });
  });
});

describe('loadInjectOptions', () => {
  function keyFile(dir: string, text = `# rotate: new key first\n${KEY_A}\n${KEY_B}\n`): string {
    const file = join(dir, 'keys');
    writeFileSync(file, text);
    return file;
  }

  it('builds the injector options from file, flags and the first key of the key file', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'config.yaml'), CONFIG);
    const opts = loadInjectOptions({ configFile: join(dir, 'config.yaml'), flags: { argoVersion: '4.0.5' }, hookKeyFile: keyFile(dir), dataDir: join(dir, 'data') });
    expect(opts).toMatchObject({ callbackUrl: 'http://kfp-notify-callback.kfp-notify.svc.cluster.local:8080', argoVersion: '4.0.5', sizeLimitBytes: 900000, image: 'registry.example/curl@sha256:0123' });
    expect(opts.hookKey.kid).toBe(hookKeyFromSecret(KEY_A).kid);
  });

  it('falls back to defaults and the data dir key, creating it once', () => {
    const dir = tempDir();
    const first = loadInjectOptions({ flags: {}, dataDir: join(dir, 'data') });
    expect(first).toMatchObject({ callbackUrl: DEFAULT_CALLBACK_URL, image: DEFAULT_IMAGE, mode: 'container' });
    const key = readFileSync(join(dir, 'data', 'hook-key'), 'utf8').trim();
    expect(first.hookKey.kid).toBe(hookKeyFromSecret(key).kid);
    expect(loadInjectOptions({ flags: {}, dataDir: join(dir, 'data') }).hookKey.kid).toBe(first.hookKey.kid);
  });

  it("says which source set a value the injector's rules refuse", () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'config.yaml'), 'callbackUrl: http://callback:8080/v1/hooks\n');
    const fromFile = { configFile: join(dir, 'config.yaml'), flags: {}, hookKeyFile: keyFile(dir), dataDir: dir };
    expect(() => loadInjectOptions(fromFile)).toThrow(ConfigError);
    expect(() => loadInjectOptions(fromFile)).toThrow(new RegExp(`callbackUrl: .*base URL.*\\(callbackUrl from ${join(dir, 'config.yaml')}\\)`));
    expect(() => loadInjectOptions({ ...fromFile, configFile: undefined, flags: { mode: 'http', argoVersion: '3.4.17' } })).toThrow(/mode: http needs Argo .*\(argoVersion from --argo-version, mode from --mode\)/);
  });

  it('names a missing config file and a missing or empty key file', () => {
    const dir = tempDir();
    expect(() => loadInjectOptions({ configFile: join(dir, 'nope.yaml'), flags: {}, dataDir: dir })).toThrow(`cannot read config file ${join(dir, 'nope.yaml')}`);
    expect(() => loadInjectOptions({ flags: {}, hookKeyFile: join(dir, 'no-keys'), dataDir: dir })).toThrow(`hook key (${join(dir, 'no-keys')}): hook key file ${join(dir, 'no-keys')} does not exist`);
    expect(() => loadInjectOptions({ flags: {}, hookKeyFile: keyFile(dir, '# none yet\n'), dataDir: dir })).toThrow('no hook key found');
  });
});

describe('watchInjectOptions', () => {
  function watched(dir: string, results: string[]): InjectOptionsSource {
    const source = watchInjectOptions(
      { configFile: join(dir, 'config.yaml'), flags: {}, hookKeyFile: join(dir, 'keys'), dataDir: dir },
      { logger: pino({ level: 'silent' }), onResult: (r) => results.push(r), pollMs: 60_000 },
    );
    cleanups.push(() => source.close());
    return source;
  }

  it('applies a changed config file and a rotated key file, and keeps the last good options on a bad change', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'config.yaml'), CONFIG);
    writeFileSync(join(dir, 'keys'), `${KEY_A}\n`);
    const results: string[] = [];
    const source = watched(dir, results);
    expect(source.get().sizeLimitBytes).toBe(900000);

    writeFileSync(join(dir, 'config.yaml'), CONFIG.replace('900000', '700000'));
    source.check();
    expect(source.get().sizeLimitBytes).toBe(700000);

    writeFileSync(join(dir, 'keys'), `${KEY_B}\n${KEY_A}\n`);
    source.check();
    expect(source.get().hookKey.kid).toBe(hookKeyFromSecret(KEY_B).kid);

    writeFileSync(join(dir, 'config.yaml'), 'mode: pod\n');
    source.check();
    expect(source.get().sizeLimitBytes).toBe(700000);
    expect(results).toEqual(['reloaded', 'reloaded', 'rejected']);
  });

  it('notices a change by itself (directory watch)', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'config.yaml'), CONFIG);
    writeFileSync(join(dir, 'keys'), `${KEY_A}\n`);
    const results: string[] = [];
    const source = watched(dir, results);
    writeFileSync(join(dir, 'config.yaml'), CONFIG.replace('mode: container', 'mode: http'));
    const deadline = Date.now() + 10_000;
    while (source.get().mode !== 'http' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(source.get().mode).toBe('http');
    expect(results).toEqual(['reloaded']);
  });

  it('throws at start on bad settings, so the process fails loudly rather than serving defaults', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'config.yaml'), 'argoVersion: "2.0"\n');
    writeFileSync(join(dir, 'keys'), `${KEY_A}\n`);
    expect(() => watched(dir, [])).toThrow(/argoVersion: 2\.0 is too old/);
  });
});
