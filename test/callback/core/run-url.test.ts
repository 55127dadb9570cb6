import { describe, expect, it } from 'vitest';
import { parseKfpUiUrl, runUrl } from '../../../callback/run-url.js';
import { parseCallbackFlags } from '../../../cli/callback.js';
import { UsageError } from '../../../cli/io.js';

describe('RunUrl', () => {
  it('is <base>/#/runs/details/<run id>, the base normalized once', () => {
    for (const given of ['https://kubeflow.example.com/pipeline', 'https://kubeflow.example.com/pipeline/', ' https://kubeflow.example.com/pipeline// ']) {
      const r = parseKfpUiUrl(given);
      expect(r).toEqual({ ok: true, base: 'https://kubeflow.example.com/pipeline' });
      if (r.ok) expect(runUrl(r.base, 'a1b2')).toBe('https://kubeflow.example.com/pipeline/#/runs/details/a1b2');
    }
    expect(parseKfpUiUrl('http://localhost:8080')).toEqual({ ok: true, base: 'http://localhost:8080' });
    expect(runUrl('https://x/_/pipeline', 'id with/slash')).toBe('https://x/_/pipeline/#/runs/details/id%20with%2Fslash');
  });

  it('no base, or no run id: no link at all', () => {
    expect(runUrl(undefined, 'a1b2')).toBe('');
    expect(runUrl('', 'a1b2')).toBe('');
    expect(runUrl('https://x', '')).toBe('');
  });

  it.each([
    ['kubeflow.example.com/pipeline', 'is not a valid URL'],
    ['ftp://kubeflow.example.com', 'must use http or https (got ftp)'],
    ['https://kubeflow.example.com/pipeline/#/runs', 'without query, fragment'],
    ['https://user:pw@kubeflow.example.com', 'without query, fragment (#/...) or credentials'],
  ])('refuses %s', (value, why) => {
    const r = parseKfpUiUrl(value);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toContain(why);
      expect(r.error).not.toContain('pw@');
    }
  });
});

describe('--kfp-ui-url and $KFP_NOTIFY_KFP_UI_URL', () => {
  it('the flag, else the environment, sets the base; neither leaves it unset', () => {
    const flags = (args: string[], env: NodeJS.ProcessEnv = {}) => {
      const f = parseCallbackFlags(args, env);
      if (f === 'help') throw new Error('help');
      return f.kfpUiUrl;
    };
    expect(flags(['--kfp-ui-url', 'https://a.example/pipeline/'])).toBe('https://a.example/pipeline');
    expect(flags([], { KFP_NOTIFY_KFP_UI_URL: 'https://b.example/_/pipeline' })).toBe('https://b.example/_/pipeline');
    expect(flags(['--kfp-ui-url', 'https://a.example'], { KFP_NOTIFY_KFP_UI_URL: 'https://b.example' })).toBe('https://a.example');
    expect(flags([])).toBeUndefined();
  });

  it('a bad value is a usage error naming the flag', () => {
    expect(() => parseCallbackFlags(['--kfp-ui-url', 'nope'], {})).toThrow(UsageError);
    expect(() => parseCallbackFlags(['--kfp-ui-url', 'nope'], {})).toThrow(/^--kfp-ui-url: the KFP UI URL 'nope' is not a valid URL/);
  });
});
