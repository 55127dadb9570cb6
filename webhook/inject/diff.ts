import type { Operation } from 'fast-json-patch';
import { jsonOf, rememberPatchText } from './patch-text.js';

/**
 * `jsonPatch.compare(before, after)` from fast-json-patch, op for op and in the same order (its
 * algorithm, kept line for line), minus the JSON round trip it makes of every added value. That round
 * trip is a second serialization of everything the injector adds; here each added value is serialized
 * once, into the patch's JSON text, which the size guard and the webhook's answer then share
 * (`patchText`). Added values are the result's own objects, not copies: like the result, read-only.
 *
 * Subtrees that `after` shares with `before` are skipped by identity, so the cost follows the edits.
 */
export function diffWorkflows(before: object, after: object): Operation[] {
  const acc: Acc = { ops: [], texts: [] };
  generate(before as Obj, after as Obj, '', acc);
  rememberPatchText(acc.ops, `[${acc.texts.join(',')}]`);
  return acc.ops;
}

type Obj = Record<string, unknown>;
interface Acc {
  ops: Operation[];
  /** Each op as JSON, exactly as JSON.stringify writes it. */
  texts: string[];
}

const hasOwn = (o: object, key: string): boolean => Object.prototype.hasOwnProperty.call(o, key);

function keysOf(o: object): string[] {
  if (!Array.isArray(o)) return Object.keys(o);
  const keys = new Array<string>(o.length);
  for (let i = 0; i < o.length; i++) keys[i] = `${i}`;
  return keys;
}

// RFC 6901: `~` → `~0`, `/` → `~1`.
const escapeKey = (key: string): string => (key.indexOf('/') === -1 && key.indexOf('~') === -1 ? key : key.replace(/~/g, '~0').replace(/\//g, '~1'));

const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null;

function put(acc: Acc, op: 'add' | 'replace', path: string, value: unknown): void {
  // JSON.stringify writes an undefined array item as null; fast-json-patch's clone does the same.
  const v = value === undefined ? null : value;
  acc.ops.push({ op, path, value: v });
  acc.texts.push(`{"op":"${op}","path":${JSON.stringify(path)},"value":${jsonOf(v)}}`);
}

function remove(acc: Acc, path: string): void {
  acc.ops.push({ op: 'remove', path });
  acc.texts.push(`{"op":"remove","path":${JSON.stringify(path)}}`);
}

function generate(mirror: Obj, objIn: Obj, path: string, acc: Acc): void {
  if (objIn === mirror) return;
  const obj: Obj = typeof objIn.toJSON === 'function' ? (objIn.toJSON as () => Obj)() : objIn;
  const newKeys = keysOf(obj);
  const oldKeys = keysOf(mirror);
  let deleted = false;
  for (let t = oldKeys.length - 1; t >= 0; t--) {
    const key = oldKeys[t] as string;
    const oldVal = mirror[key];
    if (hasOwn(obj, key) && !(obj[key] === undefined && oldVal !== undefined && !Array.isArray(obj))) {
      const newVal = obj[key];
      if (isObject(oldVal) && isObject(newVal) && Array.isArray(oldVal) === Array.isArray(newVal)) {
        generate(oldVal, newVal, `${path}/${escapeKey(key)}`, acc);
      } else if (oldVal !== newVal) {
        put(acc, 'replace', `${path}/${escapeKey(key)}`, newVal);
      }
    } else if (Array.isArray(mirror) === Array.isArray(obj)) {
      remove(acc, `${path}/${escapeKey(key)}`);
      deleted = true;
    } else {
      put(acc, 'replace', path, obj);
    }
  }
  if (!deleted && newKeys.length === oldKeys.length) return;
  for (const key of newKeys) {
    if (!hasOwn(mirror, key) && obj[key] !== undefined) put(acc, 'add', `${path}/${escapeKey(key)}`, obj[key]);
  }
}
