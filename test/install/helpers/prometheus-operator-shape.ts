import { Ajv, type ErrorObject } from 'ajv';
import type { K8sObject } from './render.js';

/**
 * The Prometheus Operator's ServiceMonitor and PrometheusRule (monitoring.coreos.com/v1) are CRDs,
 * absent from the Kubernetes OpenAPI documents. A minimal shape check written from the operator's
 * types at v0.93.0 (integrations.md §8: servicemonitor_types.go, prometheusrule_types.go): the fields
 * kfp-notify uses, their types, the required ones, and no unknown field.
 */

const DURATION = '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$';
const stringMap = { type: 'object', additionalProperties: { type: 'string' } };

const metadata = {
  type: 'object',
  required: ['name', 'namespace'],
  properties: { name: { type: 'string' }, namespace: { type: 'string' }, labels: stringMap, annotations: stringMap },
  additionalProperties: false,
};

const endpoint = {
  type: 'object',
  // `port` is the NAME of a Service port (a string), not a number.
  required: ['port'],
  properties: {
    port: { type: 'string', minLength: 1 },
    path: { type: 'string' },
    scheme: { enum: ['http', 'https'] },
    interval: { type: 'string', pattern: DURATION },
    scrapeTimeout: { type: 'string', pattern: DURATION },
    tlsConfig: {
      type: 'object',
      properties: { serverName: { type: 'string' }, insecureSkipVerify: { type: 'boolean' } },
      additionalProperties: false,
    },
  },
  additionalProperties: false,
};

const serviceMonitor = {
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { const: 'monitoring.coreos.com/v1' },
    kind: { const: 'ServiceMonitor' },
    metadata,
    spec: {
      type: 'object',
      required: ['selector', 'endpoints'],
      properties: {
        selector: { type: 'object', properties: { matchLabels: stringMap }, required: ['matchLabels'], additionalProperties: false },
        namespaceSelector: { type: 'object', properties: { matchNames: { type: 'array', items: { type: 'string' } }, any: { type: 'boolean' } }, additionalProperties: false },
        endpoints: { type: 'array', minItems: 1, items: endpoint },
        jobLabel: { type: 'string' },
      },
      additionalProperties: false,
    },
  },
  additionalProperties: false,
};

const rule = {
  type: 'object',
  required: ['expr'],
  // Exactly one of alert | record.
  oneOf: [{ required: ['alert'] }, { required: ['record'] }],
  properties: {
    alert: { type: 'string', minLength: 1 },
    record: { type: 'string', minLength: 1 },
    expr: { type: ['string', 'integer'] },
    for: { type: 'string', pattern: DURATION },
    keep_firing_for: { type: 'string', pattern: DURATION },
    labels: stringMap,
    annotations: stringMap,
  },
  additionalProperties: false,
};

const prometheusRule = {
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { const: 'monitoring.coreos.com/v1' },
    kind: { const: 'PrometheusRule' },
    metadata,
    spec: {
      type: 'object',
      required: ['groups'],
      properties: {
        groups: {
          type: 'array',
          items: {
            type: 'object',
            required: ['name', 'rules'],
            properties: {
              name: { type: 'string', minLength: 1 },
              labels: stringMap,
              interval: { type: 'string', pattern: DURATION },
              query_offset: { type: 'string', pattern: DURATION },
              rules: { type: 'array', items: rule },
              partial_response_strategy: { type: 'string' },
              limit: { type: 'integer' },
            },
            additionalProperties: false,
          },
        },
      },
      additionalProperties: false,
    },
  },
  additionalProperties: false,
};

const ajv = new Ajv({ allErrors: true });
const validators = { ServiceMonitor: ajv.compile(serviceMonitor), PrometheusRule: ajv.compile(prometheusRule) };

export function isPrometheusOperator(obj: Pick<K8sObject, 'apiVersion' | 'kind'>): boolean {
  return obj.apiVersion === 'monitoring.coreos.com/v1' && (obj.kind === 'ServiceMonitor' || obj.kind === 'PrometheusRule');
}

export function prometheusOperatorProblems(obj: K8sObject): string[] {
  const validate = validators[obj.kind as keyof typeof validators];
  if (!validate) return [`${obj.kind} is not a Prometheus Operator kind this check knows`];
  if (validate(obj)) return [];
  return (validate.errors ?? []).map((e: ErrorObject) => `${e.instancePath || '/'} ${e.message ?? ''}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`);
}
