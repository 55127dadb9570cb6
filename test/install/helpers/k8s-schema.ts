import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { K8sObject } from './render.js';
import { FIXTURES_DIR } from '../../helpers/fixtures.js';

export const OPENAPI_DIR = join(FIXTURES_DIR, 'k8s-openapi-v3-1.32');

type Schema = Record<string, unknown>;

interface Gvk {
  group: string;
  version: string;
  kind: string;
}

const SCHEMA_ID = 'k8s-1.32';
const MARKER_KEYWORDS = [
  // The OpenAPI container the merged schemas live in; refs point into it by JSON pointer.
  'components',
  'x-kubernetes-group-version-kind',
  'x-kubernetes-list-type',
  'x-kubernetes-patch-strategy',
  'x-kubernetes-patch-merge-key',
  'x-kubernetes-map-type',
  'x-kubernetes-unions',
];

function isObject(v: unknown): v is Schema {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The API server refuses unknown fields (kubectl's default field validation is Strict since 1.27), but
 * the published schemas leave additionalProperties open. Closing every object that lists its
 * properties makes a misspelt field (`readOnlyRootFileSystem`) fail here as it would on apply.
 */
function closeObjects(node: unknown): void {
  if (Array.isArray(node)) {
    node.forEach(closeObjects);
    return;
  }
  if (!isObject(node)) return;
  if (isObject(node.properties) && !('additionalProperties' in node)) node.additionalProperties = false;
  Object.values(node).forEach(closeObjects);
}

function gvkKey(g: Gvk): string {
  return `${g.group}/${g.version}/${g.kind}`;
}

export function gvkOf(obj: Pick<K8sObject, 'apiVersion' | 'kind'>): Gvk {
  const [group, version] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/', 2) : ['', obj.apiVersion];
  return { group: group ?? '', version: version ?? '', kind: obj.kind };
}

export interface K8sValidator {
  /** Whether the Kubernetes 1.32 API has this apiVersion + kind. */
  knows(obj: Pick<K8sObject, 'apiVersion' | 'kind'>): boolean;
  /** Schema errors, each as `<path> <message>`; empty when valid. Throws for a kind the API lacks. */
  validate(obj: unknown & Pick<K8sObject, 'apiVersion' | 'kind'>): string[];
}

/**
 * Validates objects against the Kubernetes 1.32 OpenAPI v3 documents: every `components.schemas` of
 * every group merged into one document (their `#/components/schemas/...` refs then resolve), each
 * object's schema found through `x-kubernetes-group-version-kind`.
 */
export function createK8sValidator(dir = OPENAPI_DIR): K8sValidator {
  const schemas: Record<string, Schema> = {};
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const doc: unknown = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    const found = isObject(doc) && isObject(doc.components) && isObject(doc.components.schemas) ? doc.components.schemas : undefined;
    if (!found) throw new Error(`${file}: no components.schemas`);
    for (const [name, s] of Object.entries(found)) if (isObject(s)) schemas[name] = s;
  }
  closeObjects(schemas);

  const byGvk = new Map<string, string[]>();
  for (const [name, s] of Object.entries(schemas)) {
    const gvks = s['x-kubernetes-group-version-kind'];
    if (!Array.isArray(gvks)) continue;
    for (const g of gvks as Gvk[]) byGvk.set(gvkKey(g), [...(byGvk.get(gvkKey(g)) ?? []), name]);
  }

  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false, allowUnionTypes: true });
  ajv.addVocabulary(MARKER_KEYWORDS);
  // list-type map: the API server rejects two items with the same key (two containers named alike).
  ajv.addKeyword({
    keyword: 'x-kubernetes-list-map-keys',
    type: 'array',
    schemaType: 'array',
    validate: (keys: string[], data: unknown[]) => {
      const seen = data.map((item) => JSON.stringify(keys.map((k) => (isObject(item) ? item[k] : undefined))));
      return new Set(seen).size === seen.length;
    },
  });
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  // Go's base64 decoder skips line breaks, and kustomize wraps long values.
  ajv.addFormat('byte', (s: string) => /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s.replace(/[\r\n]/g, '')));
  ajv.addFormat('date-time', (s: string) => !Number.isNaN(Date.parse(s)));
  ajv.addFormat('int-or-string', true);
  ajv.addSchema({ $id: SCHEMA_ID, components: { schemas } });

  const compiled = new Map<string, ValidateFunction>();
  const schemaName = (obj: Pick<K8sObject, 'apiVersion' | 'kind'>): string | undefined => {
    const names = byGvk.get(gvkKey(gvkOf(obj)));
    if (names && names.length > 1) throw new Error(`${obj.apiVersion} ${obj.kind} is claimed by several schemas: ${names.join(', ')}`);
    return names?.[0];
  };

  return {
    knows: (obj) => schemaName(obj) !== undefined,
    validate(obj) {
      const name = schemaName(obj);
      if (!name) throw new Error(`Kubernetes 1.32 has no ${obj.apiVersion} ${obj.kind}`);
      let fn = compiled.get(name);
      if (!fn) {
        fn = ajv.compile({ $ref: `${SCHEMA_ID}#/components/schemas/${name}` });
        compiled.set(name, fn);
      }
      return fn(obj) ? [] : (fn.errors ?? []).map(describeError);
    },
  };
}

function describeError(e: ErrorObject): string {
  const extra = e.keyword === 'additionalProperties' ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})` : '';
  return `${e.instancePath || '/'} ${e.message ?? e.keyword}${extra}`;
}
