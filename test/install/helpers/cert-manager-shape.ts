import { Ajv, type ErrorObject } from 'ajv';
import type { K8sObject } from './render.js';

/**
 * cert-manager's Issuer and Certificate are CRDs, absent from the Kubernetes OpenAPI documents. This is
 * a minimal shape check written from the cert-manager.io/v1 API reference (the fields kfp-notify uses,
 * their types and allowed values, and no unknown field), not the full CRD schema.
 */

const DURATION = '^([0-9]+h)?([0-9]+m)?([0-9]+s)?$';
const KNOWN_USAGES = [
  'signing', 'digital signature', 'content commitment', 'key encipherment', 'key agreement', 'data encipherment',
  'cert sign', 'crl sign', 'encipher only', 'decipher only', 'any', 'server auth', 'client auth', 'code signing',
  'email protection', 's/mime', 'ipsec end system', 'ipsec tunnel', 'ipsec user', 'timestamping', 'ocsp signing',
  'microsoft sgc', 'netscape sgc',
];

const metadata = {
  type: 'object',
  required: ['name', 'namespace'],
  properties: { name: { type: 'string' }, namespace: { type: 'string' }, labels: { type: 'object' }, annotations: { type: 'object' } },
  additionalProperties: false,
};

const issuerRef = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', minLength: 1 }, kind: { enum: ['Issuer', 'ClusterIssuer'] }, group: { const: 'cert-manager.io' } },
  additionalProperties: false,
};

const issuer = {
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { const: 'cert-manager.io/v1' },
    kind: { enum: ['Issuer', 'ClusterIssuer'] },
    metadata,
    spec: {
      type: 'object',
      // Exactly one issuer type.
      minProperties: 1,
      maxProperties: 1,
      properties: {
        selfSigned: { type: 'object', properties: { crlDistributionPoints: { type: 'array', items: { type: 'string' } } }, additionalProperties: false },
        ca: { type: 'object', required: ['secretName'], properties: { secretName: { type: 'string', minLength: 1 } }, additionalProperties: false },
        acme: { type: 'object' },
        vault: { type: 'object' },
        venafi: { type: 'object' },
      },
      additionalProperties: false,
    },
  },
  additionalProperties: false,
};

const certificate = {
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { const: 'cert-manager.io/v1' },
    kind: { const: 'Certificate' },
    metadata,
    spec: {
      type: 'object',
      required: ['secretName', 'issuerRef'],
      properties: {
        secretName: { type: 'string', minLength: 1 },
        issuerRef,
        commonName: { type: 'string', maxLength: 64 },
        dnsNames: { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 },
        isCA: { type: 'boolean' },
        duration: { type: 'string', pattern: DURATION },
        renewBefore: { type: 'string', pattern: DURATION },
        usages: { type: 'array', items: { enum: KNOWN_USAGES } },
        privateKey: {
          type: 'object',
          properties: {
            algorithm: { enum: ['RSA', 'ECDSA', 'Ed25519'] },
            size: { type: 'integer' },
            encoding: { enum: ['PKCS1', 'PKCS8'] },
            rotationPolicy: { enum: ['Never', 'Always'] },
          },
          additionalProperties: false,
        },
      },
      // A Certificate must name what it is for.
      anyOf: [{ required: ['dnsNames'] }, { required: ['commonName'] }],
      additionalProperties: false,
    },
  },
  additionalProperties: false,
};

const ajv = new Ajv({ allErrors: true });
const validators = { Issuer: ajv.compile(issuer), ClusterIssuer: ajv.compile(issuer), Certificate: ajv.compile(certificate) };

export function isCertManager(obj: K8sObject): boolean {
  return obj.apiVersion.startsWith('cert-manager.io/');
}

export function certManagerProblems(obj: K8sObject): string[] {
  const fn = obj.kind in validators ? validators[obj.kind as keyof typeof validators] : undefined;
  if (!fn || obj.apiVersion !== 'cert-manager.io/v1') return [`unexpected cert-manager object ${obj.apiVersion} ${obj.kind}`];
  return fn(obj) ? [] : (fn.errors ?? []).map((e: ErrorObject) => `${e.instancePath || '/'} ${e.message ?? e.keyword}`);
}
