import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mightHidePoisonedKey, parseJsonText } from '../../common/json-body.js';

/** `name` with each character written as itself or as a `\u00xx` escape (either hex case), as chosen. */
function spelled(name: string, escapes: readonly boolean[], upper: readonly boolean[]): string {
  return [...name]
    .map((c, i) => {
      if (!escapes[i]) return c;
      const hex = c.charCodeAt(0).toString(16).padStart(4, '0');
      return `\\u${upper[i] ? hex.toUpperCase() : hex}`;
    })
    .join('');
}

describe('parseJsonText', () => {
  it('parses JSON, as JSON.parse does', () => {
    expect(parseJsonText('{"a":[1,"\\u0026",null]}', 'x')).toEqual({ ok: true, value: { a: [1, '&', null] } });
  });

  it.each([
    ['', 'body is empty; expected an AdmissionReview'],
    ['{"a":', 'body is not valid JSON: '],
    [' \n', 'body is not valid JSON: '],
    ['{"__proto__":{"polluted":true}}', 'body is not valid JSON: Object contains forbidden prototype property'],
    ['{"a":{"constructor":{"prototype":{"x":1}}}}', 'body is not valid JSON: Object contains forbidden prototype property'],
  ])('refuses %j with a reason', (text, reason) => {
    const r = parseJsonText(text, 'an AdmissionReview');
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.reason).toContain(reason);
  });

  it('accepts a constructor key that holds no prototype, and a byte order mark, as Fastify does', () => {
    expect(parseJsonText('{"constructor":"python"}', 'x')).toEqual({ ok: true, value: { constructor: 'python' } });
    expect(parseJsonText('\ufeff{"a":1}', 'x')).toEqual({ ok: true, value: { a: 1 } });
  });

  it('refuses __proto__ however its letters are escaped (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: 9, maxLength: 9 }), fc.array(fc.boolean(), { minLength: 9, maxLength: 9 }), (esc, up) => {
        const text = `{"spec":{"${spelled('__proto__', esc, up)}":{"polluted":true}}}`;
        expect(mightHidePoisonedKey(text)).toBe(true);
        expect(parseJsonText(text, 'x').ok).toBe(false);
      }),
    );
  });

  it('lets through, unscanned, the bodies the apiserver writes (Go escapes <, > and & only)', () => {
    expect(mightHidePoisonedKey('{"args":["a \\u0026\\u0026 b","\\u003cx\\u003e"],"proto":"x","_":1}')).toBe(false);
  });
});
