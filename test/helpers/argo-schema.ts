import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { FIXTURES_DIR } from './fixtures.js';

export const ARGO_SCHEMA_VERSIONS = ['v3.4.17', 'v3.7.3'] as const;
export type ArgoSchemaVersion = (typeof ARGO_SCHEMA_VERSIONS)[number];

const cache = new Map<ArgoSchemaVersion, ValidateFunction>();

/**
 * Argo's published Workflow JSON schema, relaxed the two ways SOURCES.md describes (the raw schema is
 * stricter than Argo itself): IntOrString also takes integers (`retryStrategy.limit: 2`), and
 * meta.v1.Time also takes null (`creationTimestamp: null`). Compiled once per version.
 */
export function argoWorkflowValidator(version: ArgoSchemaVersion): ValidateFunction {
  const hit = cache.get(version);
  if (hit) return hit;
  const raw = JSON.parse(readFileSync(join(FIXTURES_DIR, 'argo-jsonschema', version, 'schema.json'), 'utf8')) as { definitions: Record<string, unknown> };
  const definitions = {
    ...raw.definitions,
    'io.k8s.apimachinery.pkg.util.intstr.IntOrString': { type: ['string', 'integer'] },
    'io.k8s.apimachinery.pkg.apis.meta.v1.Time': { type: ['string', 'null'] },
  };
  // Formats (int32, date-time, …) are Go-side hints the schema does not define; strict mode would refuse them.
  const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
  const validate = ajv.compile({ definitions, $ref: '#/definitions/io.argoproj.workflow.v1alpha1.Workflow' });
  cache.set(version, validate);
  return validate;
}

/** The schema errors of `wf` as short lines (empty when valid). */
export function argoSchemaErrors(version: ArgoSchemaVersion, wf: unknown): string[] {
  const validate = argoWorkflowValidator(version);
  if (validate(wf)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`.trim());
}
