import { FIELD_LIMITS } from '../../../callback/normalize.js';
import { mintHookToken, type HookKey } from '../../../common/hook-token.js';

/**
 * Malformed hook calls, generated from one real, valid call (its fields and its token). Each keeps
 * the valid token wherever the fault is elsewhere, so the call gets past authentication and the
 * fault itself is what the callback has to refuse. Every kind here must be answered 4xx with a reason.
 */

export interface Malformed {
  kind: string;
  body: string | Buffer;
  /** null: no content-type header at all. */
  contentType: string | null;
  authorization?: string;
}

const FORM = 'application/x-www-form-urlencoded';
const JSON_TYPE = 'application/json';
const MiB = 1024 * 1024;

const pick = <T>(rand: () => number, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
const int = (rand: () => number, lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));

function nested(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array' ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

/** Invalid UTF-8: raw bytes and percent-encoded ones (a lone continuation byte, an overlong '/', a surrogate, a cut sequence). */
const BAD_BYTES = [[0xff], [0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc3, 0x28]];
const pct = (bytes: number[]) => bytes.map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');

/**
 * `valid`: the fields of a well-formed node-exit call, in the notifier's order; `key` signs tokens
 * for the identities the generator invents. Weighted so that the costly kinds (1 MiB bodies) stay few.
 */
export function malformedCalls(count: number, valid: Record<string, string>, key: HookKey, rand: () => number): Malformed[] {
  const auth = `Bearer ${mintHookToken(key, { namespace: valid.namespace ?? '', kfpRunId: valid.kfpRunId ?? '' })}`;
  const form = new URLSearchParams(valid).toString();
  const json = JSON.stringify(valid);
  const nodePhaseEnd = form.indexOf('&', form.indexOf('nodePhase='));
  const textFields = Object.keys(valid).filter((f) => !['namespace', 'kfpRunId', 'failures'].includes(f)) as (keyof typeof FIELD_LIMITS)[];
  const withField = (f: string, v: unknown) => JSON.stringify({ ...valid, [f]: v });

  const kinds: [number, () => Malformed][] = [
    // Cut anywhere before the node phase is complete: some required field is missing or cut short.
    [10, () => ({ kind: 'truncated form', body: form.slice(0, int(rand, 0, nodePhaseEnd - 1)), contentType: FORM, authorization: auth })],
    [10, () => ({ kind: 'truncated JSON', body: json.slice(0, int(rand, 1, json.length - 1)), contentType: JSON_TYPE, authorization: auth })],
    [
      10,
      () => {
        const f = pick(rand, textFields);
        const v = pick<unknown>(rand, [[], ['Succeeded'], {}, { phase: 'Succeeded' }, [[[]]], { toString: 'x' }]);
        return { kind: 'wrong type (array or object)', body: withField(f, v), contentType: JSON_TYPE, authorization: auth };
      },
    ],
    [5, () => ({ kind: 'wrong type (number or boolean where a word is expected)', body: withField(pick(rand, ['event', 'nodePhase']), pick(rand, [0, 1.5, -1, true, false, 1e308])), contentType: JSON_TYPE, authorization: auth })],
    [
      10,
      () => {
        const f = pick(rand, textFields.filter((x) => x !== 'v'));
        const v = 'x'.repeat(FIELD_LIMITS[f] + int(rand, 1, 20_000));
        return rand() < 0.5
          ? { kind: 'huge field (form)', body: new URLSearchParams({ ...valid, [f]: v }).toString(), contentType: FORM, authorization: auth }
          : { kind: 'huge field (JSON)', body: withField(f, v), contentType: JSON_TYPE, authorization: auth };
      },
    ],
    [1, () => ({ kind: 'body over 1 MiB', body: `${form}&pad=${'p'.repeat(MiB)}`, contentType: pick(rand, [FORM, JSON_TYPE]), authorization: auth })],
    [
      6,
      () => {
        const depth = int(rand, 1_000, 100_000);
        const shape = rand() < 0.5 ? 'array' : 'object';
        return rand() < 0.5
          ? { kind: 'deeply nested JSON (whole body)', body: nested(depth, shape), contentType: JSON_TYPE, authorization: auth }
          : { kind: 'deeply nested JSON (in a field)', body: `${json.slice(0, -1)},"nodeDisplayName":${nested(depth, shape)}}`.replace('"nodeDisplayName":"', '"x":"'), contentType: JSON_TYPE, authorization: auth };
      },
    ],
    [
      8,
      () => ({
        kind: 'wrong content type',
        body: pick(rand, [form, json]),
        contentType: pick(rand, [null, 'text/plain', 'text/html', 'application/xml', 'multipart/form-data; boundary=x', 'application/octet-stream', 'application/x-www-form-urlencodedx', 'image/png', 'application/jsonl']),
        authorization: auth,
      }),
    ],
    [
      8,
      () => {
        const f = pick(rand, ['event', 'kfpRunId', 'namespace', 'nodePhase', 'hookNodeName', 'nodeDisplayName', 'v']);
        const again = rand() < 0.5 ? (valid[f] ?? '') : 'Failed';
        return { kind: 'duplicate field (form)', body: `${form}&${f}=${encodeURIComponent(again)}`, contentType: FORM, authorization: auth };
      },
    ],
    [
      10,
      () => {
        const bad = pick(rand, BAD_BYTES);
        const f = pick(rand, ['nodeDisplayName', 'hookNodeName', 'nodeTask', 'pipelineName', 'runName', 'workflowName']);
        const at = form.indexOf(`${f}=`) + f.length + 1;
        switch (int(rand, 0, 2)) {
          case 0:
            return { kind: 'invalid UTF-8 (raw bytes, form)', body: Buffer.concat([Buffer.from(form.slice(0, at)), Buffer.from(bad), Buffer.from(form.slice(at))]), contentType: FORM, authorization: auth };
          case 1:
            return { kind: 'invalid UTF-8 (percent-encoded, form)', body: `${form.slice(0, at)}${pct(bad)}${form.slice(at)}`, contentType: FORM, authorization: auth };
          default: {
            const j = json.indexOf(`"${f}":"`) + f.length + 4;
            return { kind: 'invalid UTF-8 (raw bytes, JSON)', body: Buffer.concat([Buffer.from(json.slice(0, j)), Buffer.from(bad), Buffer.from(json.slice(j))]), contentType: JSON_TYPE, authorization: auth };
          }
        }
      },
    ],
    [4, () => ({ kind: 'empty body', body: '', contentType: pick(rand, [FORM, JSON_TYPE]), authorization: auth })],
    [4, () => ({ kind: 'not an object', body: pick(rand, ['null', '[]', '"workflow-exit"', '42', 'true', '[{"v":"1"}]']), contentType: JSON_TYPE, authorization: auth })],
    [3, () => ({ kind: 'prototype pollution', body: pick(rand, [`{"__proto__":{"isAdmin":true},${json.slice(1)}`, `{"constructor":{"prototype":{"x":1}},${json.slice(1)}`]), contentType: JSON_TYPE, authorization: auth })],
    [
      10,
      () => {
        // Well-formed, authenticated, but a value the contract does not allow.
        const [f, v] = pick(rand, [
          ['event', 'workflow-started'],
          ['v', '2'],
          ['nodePhase', 'Running'],
          ['nodePhase', 'succeeded'],
          ['workflowName', 'Has Spaces'],
          ['workflowName', '{{workflow.name}}'],
          ['hookNodeName', 'not-an-exit-hook'],
          ['event', ''],
        ] as const);
        return { kind: 'invalid value', body: new URLSearchParams({ ...valid, [f]: v }).toString(), contentType: FORM, authorization: auth };
      },
    ],
    [
      4,
      () => {
        // An identity the token was minted for, but not one Kubernetes or KFP could produce.
        const [namespace, kfpRunId] = pick(rand, [
          ['Team-A', valid.kfpRunId ?? ''],
          ['team_a', valid.kfpRunId ?? ''],
          [valid.namespace ?? '', 'run id with spaces'],
          [valid.namespace ?? '', 'run\u0000id'],
          [valid.namespace ?? '', '{{workflow.labels.pipeline/runid}}'],
        ] as const);
        const token = mintHookToken(key, { namespace, kfpRunId });
        return { kind: 'invalid identity (validly signed)', body: new URLSearchParams({ ...valid, namespace, kfpRunId }).toString(), contentType: FORM, authorization: `Bearer ${token}` };
      },
    ],
  ];
  const total = kinds.reduce((n, [w]) => n + w, 0);
  return Array.from({ length: count }, () => {
    let r = rand() * total;
    for (const [w, make] of kinds) {
      r -= w;
      if (r < 0) return make();
    }
    return (kinds.at(-1) as [number, () => Malformed])[1]();
  });
}
