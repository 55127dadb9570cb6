import { Liquid, type Template } from 'liquidjs';
import { errorMessage } from '../common/error-message.js';

/**
 * Admin-written templates over an event's fields: the `template` subscriber format's body, a NATS
 * subscriber's subject, a KFP trigger's run name and parameters. One syntax for all of them:
 * `{{ Field }}` with the event's field names (`{{ KfpRunId }}`, `{{ EventType }}`, `{{ RunUrl }}`),
 * Liquid's filters and `{% if %}` where an admin needs a choice.
 *
 * The engine is LiquidJS (no JavaScript evaluation; integrations.md §4), locked down because the
 * templates come from a ConfigMap that fewer people should be able to turn into a file reader:
 * - no file system: `templates: {}` replaces it, so `{% include %}`/`{% render %}`/`{% layout %}` find
 *   nothing, and there is no tag or filter that reads the environment;
 * - own properties only (no prototype lookups), unknown filters are parse errors, unknown variables
 *   render errors (a typo in a field name is refused when the config is read, see compileTemplate);
 * - parse, render and memory limits, so a template cannot hang or exhaust the callback.
 *
 * Escaping is chosen by where the text goes, applied to every `{{ }}` output: `json` writes a value
 * as the inside of a JSON string (quotes and control characters escaped, no quotes added, no HTML
 * escaping), so `{"summary": "{{ Message }}"}` stays valid JSON whatever the message holds;
 * `subject-token` makes a value one safe NATS subject token; `none` writes it as is.
 */

export type TemplateEscape = 'json' | 'subject-token' | 'none';

/** The values a template sees: the event's fields (and any extras a caller adds), strings only. */
export type TemplateScope = Readonly<Record<string, string>>;

export interface CompiledTemplate {
  readonly source: string;
  /** Never throws: a render error (an unknown variable, a limit) is returned as `error`. */
  render(scope: TemplateScope): { ok: true; text: string } | { ok: false; error: string };
}

/** Longest template source accepted (bytes of text); a body template is a page, not a program. */
export const MAX_TEMPLATE_LENGTH = 64 * 1024;
/** Per render: wall-clock budget (ms) and memory budget (LiquidJS's own accounting, in units of string length). */
// Generous: it is a runaway guard, not a budget (a loaded 2-core node took >100 ms for a normal body once).
const RENDER_LIMIT_MS = 1_000;
const MEMORY_LIMIT = 10_000_000;

/** The inside of a JSON string: JSON.stringify escapes quotes, backslashes, control characters and lone surrogates. */
export function jsonStringInner(value: string): string {
  return JSON.stringify(value).slice(1, -1);
}

/**
 * One NATS subject token: `.` separates tokens, `*` and `>` are wildcards, and whitespace or control
 * characters are not allowed in a subject, so each becomes `_` ("Save Most Frequent" →
 * "Save_Most_Frequent", "a.b" → "a_b"). An empty value becomes `_` so a subject never has an empty token.
 */
export function subjectToken(value: string): string {
  const safe = value.replace(/[.*>\s\u0000-\u001f\u007f]/gu, '_');
  return safe === '' ? '_' : safe;
}

const ESCAPES: Readonly<Record<TemplateEscape, ((v: unknown) => string) | undefined>> = {
  json: (v) => jsonStringInner(String(v)),
  'subject-token': (v) => subjectToken(String(v)),
  none: undefined,
};

const engines = new Map<TemplateEscape, Liquid>();

function engine(escape: TemplateEscape): Liquid {
  let e = engines.get(escape);
  if (!e) {
    const outputEscape = ESCAPES[escape];
    e = new Liquid({
      templates: {},
      relativeReference: false,
      dynamicPartials: false,
      ownPropertyOnly: true,
      strictFilters: true,
      strictVariables: true,
      parseLimit: MAX_TEMPLATE_LENGTH,
      renderLimit: RENDER_LIMIT_MS,
      memoryLimit: MEMORY_LIMIT,
      globals: {},
      ...(outputEscape ? { outputEscape } : {}),
    });
    engines.set(escape, e);
  }
  return e;
}

/** The escape a body template gets from its content type: JSON bodies escape for JSON strings. */
export function escapeForContentType(contentType: string): TemplateEscape {
  const mime = (contentType.split(';')[0] ?? '').trim().toLowerCase();
  return mime === 'application/json' || mime.endsWith('+json') ? 'json' : 'none';
}

/**
 * Parses a template and, when `sample` is given, renders it once against it so that an unknown field
 * name is refused when the config is read rather than at the first delivery. The error text is fit for
 * a config error message (it never contains a Secret: templates are ConfigMap text).
 */
export function compileTemplate(
  source: string,
  escape: TemplateEscape,
  sample?: TemplateScope,
): { ok: true; template: CompiledTemplate } | { ok: false; error: string } {
  if (source.length > MAX_TEMPLATE_LENGTH) return { ok: false, error: `template is longer than ${MAX_TEMPLATE_LENGTH} characters` };
  const liquid = engine(escape);
  let parsed: Template[];
  try {
    parsed = liquid.parse(source);
  } catch (err) {
    return { ok: false, error: `template does not parse: ${errorMessage(err)}` };
  }
  const template: CompiledTemplate = {
    source,
    render(scope) {
      try {
        // A null-prototype copy: nothing but the given fields can be looked up.
        const view = Object.assign(Object.create(null) as Record<string, string>, scope);
        return { ok: true, text: liquid.renderSync(parsed, view) as string };
      } catch (err) {
        return { ok: false, error: `template cannot be rendered: ${errorMessage(err)}` };
      }
    },
  };
  if (sample) {
    const r = template.render(sample);
    if (!r.ok) return { ok: false, error: r.error };
  }
  return { ok: true, template };
}
