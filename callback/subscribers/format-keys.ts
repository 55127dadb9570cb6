import { DISPATCHES_PATH } from '../formats/github.js';
import { DEFAULT_TEMPLATE_CONTENT_TYPE, SAMPLE_SCOPE } from '../formats/template.js';
import { compileTemplate, escapeForContentType } from '../template.js';
import type { Subscriber } from '../types.js';

/**
 * The subscriber keys that belong to one format, checked once the common keys are read (parse.ts):
 * - `template` (required) and `contentType` (default application/json) for format `template`; the
 *   template is compiled and rendered once against a sample event now, so a syntax error or an
 *   unknown field name is a config error naming the subscriber, not a failed delivery later;
 * - for format `github`, a repository_dispatch URL and an Authorization header (GitHub refuses
 *   dispatches without a token).
 * Problems are pushed without the subscriber's name (parse.ts adds it); the return value is what to
 * set on the subscriber.
 */

const CONTENT_TYPE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*;\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+=("[^"\r\n]*"|[!#$%&'*+.^_`|~0-9A-Za-z-]+))*$/;

export function checkFormatKeys(sub: Subscriber, m: Readonly<Record<string, unknown>>, problems: string[]): Pick<Subscriber, 'template' | 'contentType'> {
  if (sub.format === 'github') checkGithub(sub, m.headers, problems);
  if (sub.format !== 'template') {
    for (const k of ['template', 'contentType'] as const) if (m[k] !== undefined) problems.push(`${k} is only used by format template`);
    return {};
  }
  let contentType = DEFAULT_TEMPLATE_CONTENT_TYPE;
  if (m.contentType !== undefined) {
    if (typeof m.contentType === 'string' && CONTENT_TYPE.test(m.contentType.trim())) contentType = m.contentType.trim();
    else problems.push(`contentType must be a media type such as application/json or text/plain; charset=utf-8 (got ${JSON.stringify(m.contentType)?.slice(0, 80)})`);
  }
  if (typeof m.template !== 'string' || m.template.trim() === '') {
    problems.push('template is required for format template: the request body, with {{ Field }} for the event\'s fields (docs/subscribers.md)');
    return { contentType };
  }
  const compiled = compiledOnce(m.template, escapeForContentType(contentType));
  if (!compiled.ok) {
    problems.push(`template: ${compiled.error}`);
    return { contentType };
  }
  return { template: compiled.template, contentType };
}

/**
 * Compiled templates by escape and source. A config reload re-parses every entry; handing back the
 * same compiled object for the same text keeps an unchanged subscriber deep-equal to its last
 * version (config-watch.ts compares them), so an unrelated edit does not look like a change to it.
 */
const compiledCache = new Map<string, ReturnType<typeof compileTemplate>>();
const MAX_CACHED_TEMPLATES = 256;

function compiledOnce(source: string, escape: ReturnType<typeof escapeForContentType>): ReturnType<typeof compileTemplate> {
  const key = `${escape}\n${source}`;
  let hit = compiledCache.get(key);
  if (!hit) {
    hit = compileTemplate(source, escape, SAMPLE_SCOPE);
    if (compiledCache.size >= MAX_CACHED_TEMPLATES) compiledCache.clear();
    compiledCache.set(key, hit);
  }
  return hit;
}

function checkGithub(sub: Subscriber, headers: unknown, problems: string[]): void {
  if (sub.url !== undefined) {
    let path = '';
    try {
      path = new URL(sub.url).pathname;
    } catch {
      // parse.ts has reported the URL already.
    }
    if (!DISPATCHES_PATH.test(path)) {
      problems.push('format github needs a repository_dispatch url: https://api.github.com/repos/OWNER/REPO/dispatches, or https://HOST/api/v3/repos/OWNER/REPO/dispatches on GitHub Enterprise Server');
    }
  }
  // A header given but unresolved (a missing Secret key) is reported by parse.ts already.
  const given = typeof headers === 'object' && headers !== null && Object.keys(headers).some((k) => k.toLowerCase() === 'authorization');
  if (!given) {
    problems.push('format github needs headers.Authorization: "Bearer <token>", from a Secret ({ secretKeyRef: { name, key } })');
  }
}
