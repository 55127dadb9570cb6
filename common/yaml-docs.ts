import { CORE_SCHEMA, loadAll } from 'js-yaml';
import { stringify } from 'yaml';
import { errorMessage } from './error-message.js';

/**
 * Parsing uses js-yaml: the `yaml` package rejects a multi-line single-quoted scalar that KFP's own
 * compiler emits (fixtures/kfp-v2-argocompiler-2.5.0/hello_world_with_retry.yaml) and that Go's
 * YAML, PyYAML and js-yaml accept. Printing uses `yaml`, whose output keeps long strings readable.
 */

export class InputFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputFormatError';
  }
}

// The core schema keeps timestamp-like strings as strings: the default schema would turn KFP's
// pipeline_compilation_time into a Date and print it back changed.
const PARSE_SCHEMA = CORE_SCHEMA;

/** One or more YAML or JSON documents → their values (empty documents dropped). */
export function parseDocuments(text: string, source = 'input'): unknown[] {
  if (text.trim() === '') throw new InputFormatError(`${source}: empty input, expected YAML or JSON`);
  let docs: unknown[];
  try {
    docs = loadAll(text, undefined, { filename: source, schema: PARSE_SCHEMA });
  } catch (err) {
    const msg = errorMessage(err);
    throw new InputFormatError(`${source}: not valid YAML or JSON: ${msg}`);
  }
  const kept = docs.filter((d) => d !== null && d !== undefined);
  for (const [i, d] of kept.entries()) {
    if (typeof d !== 'object' || Array.isArray(d)) {
      throw new InputFormatError(`${source}: document ${i + 1} is a ${Array.isArray(d) ? 'list' : typeof d}, expected an object`);
    }
  }
  return kept;
}

// YAML 1.1 output quotes `yes`, `on` and friends, which kubectl (a YAML 1.1 reader) would otherwise
// turn into booleans.
export function toYaml(value: unknown): string {
  return stringify(value, { lineWidth: 0, aliasDuplicateObjects: false, version: '1.1' });
}

export function toYamlStream(values: readonly unknown[]): string {
  return values.map(toYaml).join('---\n');
}
