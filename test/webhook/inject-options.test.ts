import { describe, expect, it } from 'vitest';
import { hookKeyFromSecret } from '../../common/hook-token.js';
import { injectWorkflow } from '../../webhook/inject/index.js';
import { capabilitiesFor, defaultInjectOptions, hookUrl, optionProblems, type InjectOptions } from '../../webhook/inject/options.js';
import { admittedFixture, FIXTURES_DIR, TEST_HOOK_KEY_SECRET } from '../helpers/fixtures.js';

const hookKey = hookKeyFromSecret(TEST_HOOK_KEY_SECRET);

describe('capabilitiesFor (argo-kfp.md §0)', () => {
  // [version, runningHook, statusArg, condExitHook, httpSafe]: the Argo each KFP release ships, plus the edges.
  it.each([
    ['3.1.0', false, false, false, false],
    ['3.2.3', false, false, false, false], // KFP 1.8.0–1.8.2
    ['3.3.0', true, false, false, false],
    ['3.3.8', true, false, false, false], // KFP 1.8.3–1.8.5
    ['3.3.10', true, false, false, false], // KFP 2.0–2.1
    ['3.4.0', true, false, true, false],
    ['3.4.16', true, false, true, false], // KFP 2.2
    ['v3.4.17', true, true, true, false], // KFP 2.3–2.4
    ['3.5.0', true, false, true, false],
    ['3.5.2', true, false, true, false],
    ['3.5.3', true, true, true, false],
    ['3.5.10', true, true, true, false],
    ['3.5.11', true, true, true, true],
    ['3.5.14', true, true, true, true], // KFP 2.5
    ['3.6.0', true, true, true, true],
    ['3.6.7', true, true, true, true], // KFP 2.14
    ['3.7.3', true, true, true, true], // KFP 2.15–2.16
    ['4.0.5', true, true, true, true], // KFP 2.17
    ['v4.0.8-rc1', true, true, true, true],
  ] as const)('%s → running %s, statusArg %s, condExitHook %s, httpSafe %s', (v, runningHook, statusArg, condExitHook, httpSafe) => {
    expect(capabilitiesFor(v)).toEqual({ runningHook, statusArg, condExitHook, httpSafe });
  });

  it('refuses a string that is not a version', () => {
    expect(() => capabilitiesFor('latest')).toThrow(/not a version/);
  });
});

describe('defaultInjectOptions', () => {
  it('fills in the documented defaults', () => {
    expect(defaultInjectOptions({ hookKey })).toEqual({
      callbackUrl: 'http://kfp-notify-callback.kfp-notify.svc.cluster.local:8080',
      argoVersion: '4.0.5',
      mode: 'container',
      sizeLimitBytes: 1048576,
      hookKey,
      image: 'curlimages/curl:8.11.1',
    });
  });

  it.each<[string, Partial<InjectOptions>, RegExp]>([
    ['a callback URL with a path', { callbackUrl: 'http://cb:8080/v1/hooks' }, /callbackUrl: .*without a path/],
    ['a callback URL with a query', { callbackUrl: 'http://cb:8080?x=1' }, /callbackUrl: .*query/],
    ['a callback URL that is not http(s)', { callbackUrl: 'ftp://cb' }, /callbackUrl: .*http or https/],
    ['a callback URL that is not a URL', { callbackUrl: 'cb:8080' }, /callbackUrl: .*http or https|callbackUrl: .*absolute/],
    ['a callback URL with credentials', { callbackUrl: 'http://u:p@cb' }, /callbackUrl: must not carry credentials/],
    ['an Argo version that is not one', { argoVersion: 'latest' }, /argoVersion: "latest" is not a version/],
    ['an Argo without per-step exit hooks', { argoVersion: '3.0.10' }, /argoVersion: 3\.0\.10 is too old/],
    ['http mode on an Argo where a failed agent pod errors the run', { mode: 'http', argoVersion: '3.5.10' }, /mode: http needs Argo 3\.5\.11\+/],
    ['an unknown mode', { mode: 'pigeon' as 'http' }, /mode: must be "container" or "http"/],
    ['a size limit of zero', { sizeLimitBytes: 0 }, /sizeLimitBytes: must be a positive whole number/],
    ['an image with spaces', { image: 'curl image' }, /image: must be a container image reference/],
    ['a namespace that is not a DNS label', { namespace: 'Not_A_Namespace' }, /namespace: "Not_A_Namespace" is not/],
  ])('refuses %s, naming the option', (_what, partial, message) => {
    expect(() => defaultInjectOptions({ ...partial, hookKey })).toThrow(message);
  });

  it('accepts an https callback with a trailing slash, and the hook URL appends the hook path once', () => {
    const opts = defaultInjectOptions({ hookKey, callbackUrl: 'https://cb.example:8443/' });
    expect(hookUrl(opts)).toBe('https://cb.example:8443/v1/hooks');
  });

  it('injectWorkflow skips (never throws) when handed options that were never checked', () => {
    const bad = { ...defaultInjectOptions({ hookKey }), callbackUrl: 'http://cb/path' };
    expect(optionProblems(bad)).toHaveLength(1);
    const input = admittedFixture(`${FIXTURES_DIR}/kfp-v2-argocompiler-2.5.0/hello_world.yaml`);
    const r = injectWorkflow(input, bad);
    expect(r).toMatchObject({ outcome: 'skipped', patch: [] });
    expect(r.reason).toMatch(/^invalid options: callbackUrl: /);
    expect(r.workflow).toBe(input);
  });
});
