import { describe, expect, it } from 'vitest';
import { compileTemplate, escapeForContentType, subjectToken } from '../../../callback/template.js';

const scope = { KfpRunId: 'r-1', EventType: 'WorkflowFailed', Message: 'he said "hi"\n<b>&\\', Namespace: 'team a.b' };

function render(src: string, escape: 'json' | 'subject-token' | 'none', s = scope): string {
  const c = compileTemplate(src, escape);
  if (!c.ok) throw new Error(c.error);
  const r = c.template.render(s);
  if (!r.ok) throw new Error(r.error);
  return r.text;
}

describe('templates', () => {
  it('writes {{ Field }} JSON-escaped without quotes, so a JSON body stays valid whatever the value holds', () => {
    const text = render('{"summary": "{{ Message }}", "run": "{{ KfpRunId }}"}', 'json');
    expect(JSON.parse(text)).toEqual({ summary: scope.Message, run: 'r-1' });
    expect(text).not.toContain('&quot;');
  });

  it('writes values as they are for non-JSON content types, and chooses the escape from the content type', () => {
    expect(render('{{ Message }}', 'none')).toBe(scope.Message);
    expect(escapeForContentType('application/json; charset=utf-8')).toBe('json');
    expect(escapeForContentType('application/vnd.pagerduty+json')).toBe('json');
    expect(escapeForContentType('text/plain')).toBe('none');
  });

  it('makes subject tokens safe: dots, spaces, wildcards and empty values', () => {
    expect(render('kfp.{{ Namespace }}.{{ EventType }}', 'subject-token')).toBe('kfp.team_a_b.WorkflowFailed');
    expect(subjectToken('')).toBe('_');
    expect(subjectToken('a*b>c\td')).toBe('a_b_c_d');
  });

  it('lets an admin choose with {% if %} and Liquid filters', () => {
    expect(render('{% if EventType == "WorkflowFailed" %}critical{% else %}info{% endif %}', 'none')).toBe('critical');
    expect(render('{{ KfpRunId | upcase }}', 'none')).toBe('R-1');
  });

  it('refuses an unknown field when compiled against a sample, and an unknown filter at parse', () => {
    const c = compileTemplate('{{ KfpRunID }}', 'none', scope);
    expect(c.ok).toBe(false);
    if (!c.ok) expect(c.error).toMatch(/KfpRunID/);
    const f = compileTemplate('{{ KfpRunId | shell }}', 'none');
    expect(f.ok).toBe(false);
  });

  it('cannot read files, the environment or prototypes', () => {
    for (const src of ['{% include "package.json" %}', '{% render "/etc/passwd" %}', '{% layout "README.md" %}x']) {
      const c = compileTemplate(src, 'none');
      const out = c.ok ? c.template.render(scope) : { ok: false as const, error: c.error };
      expect(out.ok).toBe(false);
    }
    for (const src of ['{{ Message.constructor }}', '{{ process.env.HOME }}', '{{ __proto__ }}']) {
      const c = compileTemplate(src, 'none');
      expect(c.ok && c.template.render(scope).ok).toBe(false);
    }
  });

  it('bounds a template: too long is refused, a render past its limits is an error, not a hang', () => {
    expect(compileTemplate('x'.repeat(70_000), 'none').ok).toBe(false);
    const c = compileTemplate('{% for i in (1..100000000) %}{{ Message }}{% endfor %}', 'none');
    expect(c.ok).toBe(true);
    if (c.ok) expect(c.template.render(scope).ok).toBe(false);
  });
});
