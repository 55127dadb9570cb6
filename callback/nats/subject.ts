import { KFP_EVENT_FIELDS, type KfpEvent } from '../types.js';
import type { TemplateScope } from '../template.js';

/**
 * NATS subjects: what makes one valid for a publish, and the values a subject template sees.
 * Pure. Each `{{ Field }}` of a template is escaped into one safe token by template.ts
 * (`subject-token`: `.`, `*`, `>`, whitespace and control characters become `_`, an empty value `_`),
 * so a value can never add a level or a wildcard; this module checks the text as a whole, which
 * catches what the admin wrote around the values.
 */

/** nats-server's default max_control_line is 4 KiB for the whole PUB line; a subject far shorter is the sane bound. */
export const MAX_SUBJECT_LENGTH = 1024;

/** Why `subject` cannot be published to, or undefined when it can. */
export function subjectProblem(subject: string): string | undefined {
  if (subject === '') return 'the subject is empty';
  if (subject.length > MAX_SUBJECT_LENGTH) return `the subject is longer than ${MAX_SUBJECT_LENGTH} characters`;
  if (/[\s\u0000-\u001f\u007f]/u.test(subject)) return 'a subject cannot contain whitespace or control characters';
  const tokens = subject.split('.');
  if (tokens.some((t) => t === '')) return 'a subject cannot have an empty token (a leading, trailing or double dot)';
  if (tokens.some((t) => t === '*' || t === '>')) return 'a subject to publish to cannot contain the wildcards * or >';
  return undefined;
}

/** A subject with `{{ }}` or `{% %}` is a template, rendered per event; anything else is fixed. */
export function isTemplate(source: string): boolean {
  return /\{\{|\{%/.test(source);
}

/** What a subject template sees: the event's fields, by their documented names. */
export function subjectScope(event: KfpEvent): TemplateScope {
  const scope: Record<string, string> = {};
  for (const k of KFP_EVENT_FIELDS) scope[k] = event[k];
  return scope;
}

/**
 * A stand-in event for checking a template when the config is read: every field set, so that only
 * a name that is not a field fails. Values have dots and spaces, as real ones may.
 */
export const SAMPLE_SCOPE: TemplateScope = Object.freeze(
  Object.fromEntries(KFP_EVENT_FIELDS.map((k) => [k, k === 'EventType' ? 'WorkflowSucceeded' : `sample ${k}.value`])),
);
