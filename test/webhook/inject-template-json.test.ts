import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hookTemplate, type HookTemplateInput } from '../../webhook/inject/hook-template.js';
import { jsonOf } from '../../webhook/inject/patch-text.js';

// The notifier template's JSON comes from a text cut once per setting with the run's values spliced
// in (hook-template.ts); it must be exactly what JSON.stringify writes, whatever the values hold.
describe('the notifier template written from its cached text', () => {
  const anyText = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('{{workflow.name}}', '"quoted" \\ back', '\u0000token\u0000', 'a\u2028b', '\ud800'));

  it.each(['container', 'http'] as const)('is byte for byte JSON.stringify of the template, in %s mode (property)', (mode) => {
    fc.assert(
      fc.property(anyText, anyText, anyText, anyText, anyText, fc.constantFrom('http://cb:8080/v1/hooks', 'https://cb.example/v1/hooks'), (token, runId, pipelineName, runName, recurringRunName, url) => {
        const x: HookTemplateInput = { mode, url, image: 'curlimages/curl:8.11.1', token, runId, pipelineName, runName, recurringRunName };
        const template = hookTemplate(x);
        expect(jsonOf(template)).toBe(JSON.stringify(template));
      }),
    );
  });

  it('serializes afresh when a setting holds the NUL its markers use', () => {
    const template = hookTemplate({ mode: 'container', url: 'http://cb/v1/hooks', image: 'img\u0000token\u0000', token: 't', runId: 'r', pipelineName: 'p', runName: 'n', recurringRunName: 's' });
    expect(jsonOf(template)).toBe(JSON.stringify(template));
  });
});
