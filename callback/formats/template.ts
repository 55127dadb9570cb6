import { KFP_EVENT_FIELDS, type KfpEvent, type Subscriber } from '../types.js';
import type { TemplateScope } from '../template.js';
import type { Delivery } from './delivery.js';

/**
 * Format `template`: a body the admin writes in the subscriber's `template` key, in the one template
 * engine (callback/template.ts: LiquidJS, no files, no environment, no code), with the event's fields
 * as variables (`{{ KfpRunId }}`, `{{ Message }}`, `{{ RunUrl }}`...). With a JSON content type
 * (the default) every `{{ }}` writes its value escaped for the inside of a JSON string. parse.ts
 * compiles the template when the config is read (an unknown field is a config error there).
 */

export const DEFAULT_TEMPLATE_CONTENT_TYPE = 'application/json';

/** What a template sees: every documented field of the event, strings only. */
export function templateScope(e: KfpEvent): TemplateScope {
  const scope: Record<string, string> = {};
  for (const k of KFP_EVENT_FIELDS) scope[k] = e[k] ?? '';
  return scope;
}

/** A scope with every field set, to check a template when the config is read. */
export const SAMPLE_SCOPE: TemplateScope = Object.fromEntries(KFP_EVENT_FIELDS.map((k) => [k, `sample-${k}`]));

/**
 * Throws when the template cannot be rendered (a render limit): the worker counts that as a failed
 * attempt, retried and dead-lettered like an unreachable endpoint, with the reason recorded.
 */
export function templateDelivery(e: KfpEvent, sub: Pick<Subscriber, 'template' | 'contentType'>): Delivery {
  if (!sub.template) throw new Error('format template has no compiled template');
  const r = sub.template.render(templateScope(e));
  if (!r.ok) throw new Error(r.error);
  return { headers: { 'content-type': sub.contentType ?? DEFAULT_TEMPLATE_CONTENT_TYPE }, body: r.text };
}
