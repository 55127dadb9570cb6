import type { Operation } from 'fast-json-patch';

// The injector writes its patch's JSON once (diff.ts), for the size guard; the webhook sends the same
// text. Keyed by the patch array itself, so a patch made elsewhere (a test's stand-in injector) is
// serialized on demand.
const texts = new WeakMap<readonly Operation[], string>();

/** Records `text` as `JSON.stringify(patch)`: only for a patch that is never edited afterwards. */
export function rememberPatchText(patch: readonly Operation[], text: string): void {
  texts.set(patch, text);
}

/** `JSON.stringify(patch)`, computed at most once per patch array. */
export function patchText(patch: readonly Operation[]): string {
  let text = texts.get(patch);
  if (text === undefined) {
    text = JSON.stringify(patch);
    texts.set(patch, text);
  }
  return text;
}

// Values whose JSON is known before the diff meets them (the notifier template, written from a cached
// text): the diff copies the text instead of serializing the value again.
const valueTexts = new WeakMap<object, string>();

/** Records `text` as `JSON.stringify(value)`: only for a value that is never edited afterwards. */
export function rememberJson(value: object, text: string): void {
  valueTexts.set(value, text);
}

/** `JSON.stringify(value)`, from the recorded text when there is one. */
export function jsonOf(value: unknown): string {
  return (typeof value === 'object' && value !== null ? valueTexts.get(value) : undefined) ?? JSON.stringify(value);
}
