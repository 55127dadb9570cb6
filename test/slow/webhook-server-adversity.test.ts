import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { connect as tlsConnect, createServer as createTlsServer, type SecureVersion } from 'node:tls';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RUN_NAME_ANNOTATION } from '../../common/hook-contract.js';
import { hookKeyFromSecret } from '../../common/hook-token.js';
import { createLogger } from '../../common/logger.js';
import { injectWorkflow, type InjectResult } from '../../webhook/inject/index.js';
import { defaultInjectOptions } from '../../webhook/inject/options.js';
import { DEFAULT_BODY_LIMIT_BYTES, startWebhookServer, type Injector, type RunningWebhook, type WebhookServerOptions } from '../../webhook/server.js';
import { BIN } from '../helpers/cli.js';
import { admittedWorkflow, httpsRequest, makeCert, reviewFor, writeSecretVolume, type TestCert } from '../helpers/tls.js';
import { damagedWorkflow, kfpWorkflow } from '../helpers/gen-workflow.js';
import { leaks } from './helpers/secrets.js';
import { cleanups as testCleanups } from '../helpers/cleanups.js';

/**
 * The webhook as the kube-apiserver meets it: real HTTPS on 127.0.0.1, the real injector, and traffic
 * that goes wrong in every way we could think of. Every log line any webhook writes in this file is
 * kept, and the last test checks that no secret reached one.
 * KFP_NOTIFY_BAD_REVIEWS sets how many malformed reviews are sent; FC_SEED replays a run.
 */
const BAD_REVIEWS = Number(process.env.KFP_NOTIFY_BAD_REVIEWS ?? 10_000);
const SEED = process.env.FC_SEED === undefined ? Date.now() ^ (Math.random() * 0x100000000) : Number(process.env.FC_SEED);
/** The apiserver gives up on a webhook after `timeoutSeconds` (5 in manifests/): every answer must come sooner. */
const ANSWER_BOUND_MS = 5_000;
const LIMIT = DEFAULT_BODY_LIMIT_BYTES;

const HOOK_SECRET = randomBytes(24).toString('base64url');
const hookKey = hookKeyFromSecret(HOOK_SECRET);
const options = defaultInjectOptions({ hookKey });

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every line any webhook wrote during this file, and every secret that could have leaked into one. */
const logLines: string[] = [];
const tlsKeys: string[] = [];
const tokensSeen = new Set<string>();
let bodiesWithTokens = 0;
const TOKEN_RE = /kn1\.[0-9a-f]{8}\.[A-Za-z0-9_-]{20,}/g;

const cleanups = testCleanups('kfp-notify-slow-webhook-');
afterAll(cleanups.run);
const tempDir = cleanups.tempDir;

interface Started {
  server: RunningWebhook;
  registry: Registry;
  cert: TestCert;
  dir: string;
}

/** A real webhook (startWebhookServer) with the product logger at trace level, writing into logLines. */
async function startWebhook(over: Partial<WebhookServerOptions> = {}, cert?: TestCert): Promise<Started> {
  const pair = cert ?? (await makeCert());
  tlsKeys.push(pair.key);
  const dir = tempDir();
  const registry = new Registry();
  const logger = createLogger({ level: 'trace', destination: { write: (line: string) => void logLines.push(line) } });
  const server = await startWebhookServer({ host: '127.0.0.1', port: 0, ...writeSecretVolume(dir, pair), logger, registry, getInjectOptions: () => options, certPollMs: 60_000, ...over });
  cleanups.push(() => server.close());
  return { server, registry, cert: pair, dir };
}

function pool(s: Started, connections = 16): Pool {
  const p = new Pool(s.server.url, { connections, connect: { ca: s.cert.cert, servername: 'localhost' }, headersTimeout: ANSWER_BOUND_MS, bodyTimeout: ANSWER_BOUND_MS });
  cleanups.push(() => p.destroy());
  return p;
}

interface Answer {
  status: number;
  json: unknown;
  ms: number;
}

/** POST /mutate; `contentType` undefined sends no content-type header at all. */
async function post(p: Pool, body: Buffer | string | Readable | undefined, contentType: string | undefined): Promise<Answer> {
  const started = performance.now();
  const res = await p.request({ path: '/mutate?timeout=5s', method: 'POST', headers: contentType === undefined ? {} : { 'content-type': contentType }, body });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.statusCode, json, ms: performance.now() - started };
}

const responseOf = (a: Answer): Obj => (isObj(a.json) && isObj(a.json.response) ? a.json.response : {});

function tokensIn(patchBase64: unknown): string[] {
  return typeof patchBase64 === 'string' ? (Buffer.from(patchBase64, 'base64').toString('utf8').match(TOKEN_RE) ?? []) : [];
}

async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = registry.getSingleMetric(name);
  const values = m ? (await m.get()).values : [];
  return values.filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want) && !('le' in v.labels)).reduce((n, v) => n + v.value, 0);
}

// ---------- fail open ----------

const BUDGET_MS = 300;
const BEHAVIOUR = 'test.kfp-notify/behaviour';
const INTERNAL = /^kfp-notify: hooks not injected: internal error/;
const TIMEOUT = new RegExp(`^kfp-notify: hooks not injected: injection took longer than ${BUDGET_MS} ms`);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const nonsense = (v: unknown): InjectResult => v as InjectResult;
const unprintable = (): never => {
  throw Object.create(null) as object;
};

/** Ways an injector (or something it calls) can go wrong, each with the warning the submitter must get. */
const BEHAVIOURS: Record<string, { run: Injector; warning: RegExp }> = {
  'throws an Error': { run: () => { throw new Error('boom'); }, warning: INTERNAL },
  'throws a string': { run: () => { throw 'boom'; }, warning: INTERNAL },
  'throws undefined': { run: () => { throw undefined; }, warning: INTERNAL },
  'throws an object that cannot be printed': { run: unprintable, warning: INTERNAL },
  'throws an Error whose message getter throws': {
    run: () => {
      throw Object.defineProperty(new Error(), 'message', { get: unprintable });
    },
    warning: INTERNAL,
  },
  'overflows the stack': { run: function deep(input, opts): InjectResult { return deep(input, opts); }, warning: INTERNAL },
  'rejects': { run: () => Promise.reject(new Error('async boom')), warning: INTERNAL },
  'returns null': { run: () => nonsense(null), warning: INTERNAL },
  'returns a number': { run: () => nonsense(42), warning: INTERNAL },
  'returns a patch that is not a list': { run: (input) => nonsense({ outcome: 'injected', workflow: input, patch: 'add everything' }), warning: INTERNAL },
  'returns a patch JSON cannot carry (a BigInt)': { run: (input) => ({ outcome: 'injected', workflow: input, patch: [{ op: 'add', path: '/x', value: 1n }] }), warning: INTERNAL },
  'never settles': { run: () => new Promise<InjectResult>(() => undefined), warning: TIMEOUT },
  'answers after twice the budget': { run: async (input, opts) => (await sleep(2 * BUDGET_MS), injectWorkflow(input, opts)), warning: TIMEOUT },
  'blocks the event loop past the budget, then injects': {
    run: (input, opts) => {
      const until = performance.now() + 2 * BUDGET_MS;
      while (performance.now() < until) {
        // a synchronous injector cannot be cut off; its late patch must be dropped
      }
      return injectWorkflow(input, opts);
    },
    warning: TIMEOUT,
  },
};

function behaviourOf(input: unknown): string | undefined {
  const annotations = isObj(input) && isObj(input.metadata) && isObj(input.metadata.annotations) ? input.metadata.annotations : {};
  const b = annotations[BEHAVIOUR];
  return typeof b === 'string' ? b : undefined;
}

/** The real injector, unless the Workflow asks (by annotation) to misbehave. */
const standIn: Injector = (input, opts) => {
  const b = behaviourOf(input);
  return b === undefined ? injectWorkflow(input, opts) : (BEHAVIOURS[b]?.run ?? injectWorkflow)(input, opts);
};

function workflowThat(behaviour: string | undefined): Obj {
  const wf = admittedWorkflow('kfp-v2-compiled-workflows-master/pipeline_with_loops.yaml');
  if (behaviour !== undefined) (wf.metadata as { annotations: Obj }).annotations[BEHAVIOUR] = behaviour;
  return wf;
}

describe('fail open, through the real HTTPS server', () => {
  let s: Started;
  let p: Pool;
  beforeAll(async () => {
    s = await startWebhook({ inject: standIn, timeBudgetMs: BUDGET_MS });
    p = pool(s, 32);
  });

  it.each(Object.entries(BEHAVIOURS))('answers allowed, without a patch and with a warning, when the injector %s', async (_what, b) => {
    const uid = randomUUID();
    const a = await post(p, JSON.stringify(reviewFor(workflowThat(_what), { uid })), 'application/json');
    expect(a.status, JSON.stringify(a.json)).toBe(200);
    const r = responseOf(a);
    expect(r).toMatchObject({ uid, allowed: true });
    expect(r.patch).toBeUndefined();
    expect(r.warnings).toEqual([expect.stringMatching(b.warning)]);
  });

  it('answers allowed when the injector options cannot be loaded', async () => {
    const broken = await startWebhook({
      getInjectOptions: () => {
        throw new Error(`hook key file unreadable (${HOOK_SECRET.length} bytes expected)`);
      },
    });
    const a = await post(pool(broken, 1), JSON.stringify(reviewFor(workflowThat(undefined))), 'application/json');
    expect(a.status).toBe(200);
    expect(responseOf(a)).toMatchObject({ allowed: true, warnings: [expect.stringMatching(INTERNAL)] });
  });

  it('answers 400 concurrent requests that mix every failure (except the blocking one) with healthy ones, each allowed', async () => {
    const kinds = [undefined, ...Object.keys(BEHAVIOURS).filter((k) => !k.startsWith('blocks'))];
    const sent = Array.from({ length: 400 }, (_, i) => ({ uid: `load-${i}`, behaviour: kinds[i % kinds.length] }));
    const answers = await Promise.all(sent.map((x) => post(p, JSON.stringify(reviewFor(workflowThat(x.behaviour), { uid: x.uid })), 'application/json')));
    answers.forEach((a, i) => {
      const x = sent[i];
      expect(a.status, `${x?.uid} (${x?.behaviour ?? 'healthy'})`).toBe(200);
      const r = responseOf(a);
      expect(r).toMatchObject({ uid: x?.uid, allowed: true });
      if (x?.behaviour === undefined) {
        // A healthy request may still time out while its neighbours hog the loop; then it fails open too.
        if (r.patch === undefined) expect(r.warnings).toEqual([expect.stringMatching(TIMEOUT)]);
        for (const t of tokensIn(r.patch)) tokensSeen.add(t);
      } else {
        expect(r.patch, `${x.uid} (${x.behaviour})`).toBeUndefined();
      }
    });
    expect((await httpsRequest(`${s.server.url}/healthz`, { ca: s.cert.cert })).status).toBe(200);
    const failedOpen = await metric(s.registry, 'kfp_notify_admission_failed_open_total', {});
    expect(failedOpen).toBeGreaterThanOrEqual(sent.filter((x) => x.behaviour !== undefined).length);
  });
});

// ---------- malformed reviews ----------

type Expectation = { status: 400; mentions?: string } | { status: 413 } | { status: 200; uid: string };

interface BadCase {
  arm: string;
  /** Undefined: no content-type header. */
  contentType: string | undefined;
  /** Built when sent: some bodies are megabytes. */
  body: () => Buffer | string | Readable | undefined;
  expect: Expectation;
}

const REMOVE = Symbol('remove the field');
const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(REMOVE),
  fc.constantFrom(null, 0, -1, 1e308, true, false, '', 'x', 'create', [], {}, ['CREATE'], { kind: 'Workflow' }),
  fc.jsonValue({ maxDepth: 2 }),
);

/**
 * Whether a value carries what the webhook refuses as prototype poisoning (a `__proto__` key, or a
 * `constructor` object with a `prototype` key, as secure-json-parse checks): fc.jsonValue makes such
 * keys on purpose, and wherever they sit in a review the right answer is that refusal.
 */
function poisons(v: unknown): boolean {
  if (Array.isArray(v)) return v.some(poisons);
  if (!isObj(v)) return false;
  return Object.entries(v).some(([k, x]) => k === '__proto__' || (k === 'constructor' && isObj(x) && Object.hasOwn(x, 'prototype')) || poisons(x));
}
const POISON_REFUSED = { status: 400, mentions: 'forbidden prototype property' } as const;

/** Fields the AdmissionReview parser checks, with the values it must refuse (and the words its reason uses). */
const ENVELOPE: { path: string[]; mentions: string; wrong: (v: unknown) => boolean }[] = [
  { path: ['apiVersion'], mentions: 'apiVersion must be', wrong: (v) => v !== 'admission.k8s.io/v1' },
  { path: ['kind'], mentions: 'kind must be "AdmissionReview"', wrong: (v) => v !== 'AdmissionReview' },
  { path: ['request'], mentions: 'request must be an object', wrong: (v) => !isObj(v) },
  { path: ['request', 'uid'], mentions: 'request.uid', wrong: (v) => typeof v !== 'string' || v === '' },
  { path: ['request', 'operation'], mentions: 'request.operation', wrong: (v) => typeof v !== 'string' || !['CREATE', 'UPDATE', 'DELETE', 'CONNECT'].includes(v) },
  { path: ['request', 'kind'], mentions: 'request.kind', wrong: (v) => !isObj(v) },
  { path: ['request', 'kind', 'kind'], mentions: 'request.kind', wrong: (v) => typeof v !== 'string' },
  { path: ['request', 'kind', 'version'], mentions: 'request.kind', wrong: (v) => typeof v !== 'string' },
  { path: ['request', 'kind', 'group'], mentions: 'request.kind.group', wrong: (v) => v !== REMOVE && v !== null && typeof v !== 'string' },
  { path: ['request', 'namespace'], mentions: 'request.namespace', wrong: (v) => v !== REMOVE && v !== null && typeof v !== 'string' },
  { path: ['request', 'name'], mentions: 'request.name', wrong: (v) => v !== REMOVE && v !== null && typeof v !== 'string' },
  { path: ['request', 'object'], mentions: 'request.object', wrong: (v) => !isObj(v) },
  { path: ['request', 'dryRun'], mentions: 'request.dryRun', wrong: (v) => v !== REMOVE && typeof v !== 'boolean' },
];
/** Fields of a real review the webhook does not read: any value there is no reason to refuse. */
const IGNORED = ['resource', 'subResource', 'requestKind', 'requestResource', 'userInfo', 'oldObject', 'options'];

function setPath(o: Obj, path: string[], v: unknown): void {
  const parent = path.slice(0, -1).reduce<Obj>((x, k) => (isObj(x[k]) ? (x[k] as Obj) : (x[k] = {})), o);
  const key = path.at(-1) ?? '';
  if (v === REMOVE) delete parent[key];
  else parent[key] = v;
}

interface Source {
  uid: string;
  review: () => Obj;
}

/** A review of a generated KFP Workflow; a quarter already injected (a KFP Retry resubmits the mutated spec, hook token and all). */
const source: fc.Arbitrary<Source> = fc.tuple(fc.oneof(kfpWorkflow('v1'), kfpWorkflow('v2')), fc.integer({ min: 0, max: 3 }), fc.uuid()).map(([c, n, uid]) => ({
  uid,
  review: () => {
    const injected = n === 0 ? injectWorkflow(c.workflow, { ...options, namespace: 'team-a' }) : undefined;
    const object = injected?.outcome === 'injected' ? injected.workflow : c.workflow;
    return reviewFor(object, { uid });
  },
}));

const json = (v: unknown): string => JSON.stringify(v);
const WRONG_TYPES = ['text/plain', 'text/html', 'application/yaml', 'application/xml', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream', 'application/merge-patch+json', 'application/json-patch+json', 'application/jsonx', 'application/vnd.kubernetes.protobuf', 'json', '*/*', 'application/json, text/plain'];

/** Deeply nested JSON, built as text (a recursive JSON.stringify would overflow the test's own stack). */
const nest = (depth: number, shape: '[' | '{'): string => (shape === '[' ? `${'['.repeat(depth)}1${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`);

/** `total` bytes as a stream of 64 KiB chunks: sent chunked, with no content-length to refuse up front. */
function chunks(total: number, fill: number): Readable {
  const chunk = Buffer.alloc(64 * 1024, fill);
  return Readable.from((function* () {
    for (let sent = 0; sent < total; sent += chunk.length) yield chunk.subarray(0, Math.min(chunk.length, total - sent));
  })());
}

/** A review of exactly `size` bytes: its Workflow carries an annotation padded to fit. */
function reviewOfSize(size: number, uid: string): Buffer {
  const wf = admittedWorkflow('kfp-v2-argocompiler-2.5.0/hello_world.yaml');
  (wf.metadata as { annotations: Obj }).annotations['example.com/padding'] = '';
  const bare = json(reviewFor(wf, { uid }));
  return Buffer.from(bare.replace('"example.com/padding":""', `"example.com/padding":"${'x'.repeat(size - Buffer.byteLength(bare))}"`));
}

const ARMS: fc.WeightedArbitrary<BadCase>[] = [
  {
    weight: 2000,
    arbitrary: fc.tuple(source, fc.double({ min: 0, max: 1, noNaN: true })).map(([s, at]): BadCase => ({
      arm: 'truncated JSON',
      contentType: 'application/json',
      body: () => {
        const full = Buffer.from(json(s.review()));
        return full.subarray(0, 1 + Math.floor(at * (full.length - 2)));
      },
      expect: { status: 400, mentions: 'not valid JSON' },
    })),
  },
  {
    weight: 2000,
    arbitrary: fc
      .tuple(source, fc.constantFrom(...ENVELOPE), wrongValue)
      .filter(([, field, v]) => field.wrong(v))
      .map(([s, field, v]): BadCase => ({
        arm: `wrong ${field.path.join('.')}`,
        contentType: 'application/json',
        body: () => {
          const r = s.review();
          setPath(r, field.path, v);
          return json(r);
        },
        expect: poisons(v) ? POISON_REFUSED : { status: 400, mentions: field.mentions },
      })),
  },
  {
    weight: 1500,
    arbitrary: fc.tuple(damagedWorkflow, fc.uuid()).map(([d, uid]): BadCase => ({ arm: 'damaged Workflow inside a good review', contentType: 'application/json', body: () => json(reviewFor(d.workflow, { uid })), expect: poisons(d.workflow) ? POISON_REFUSED : { status: 200, uid } })),
  },
  {
    weight: 500,
    arbitrary: fc.tuple(source, fc.constantFrom(...IGNORED), wrongValue).map(([s, field, v]): BadCase => ({
      arm: 'wrong type in a field the webhook ignores',
      contentType: 'application/json',
      body: () => {
        const r = s.review();
        setPath(r, ['request', field], v);
        return json(r);
      },
      expect: poisons(v) ? POISON_REFUSED : { status: 200, uid: s.uid },
    })),
  },
  {
    weight: 800,
    arbitrary: fc.tuple(source, fc.constantFrom(...WRONG_TYPES, undefined)).map(([s, ct]): BadCase => ({
      arm: 'wrong content type',
      contentType: ct,
      body: () => json(s.review()),
      expect: { status: 400, mentions: `content-type must be application/json, got ${ct === undefined ? 'none' : json(ct)}` },
    })),
  },
  {
    weight: 100,
    arbitrary: fc.constantFrom<BadCase>(
      { arm: 'empty', contentType: 'application/json', body: () => '', expect: { status: 400, mentions: 'body is empty' } },
      { arm: 'empty', contentType: undefined, body: () => undefined, expect: { status: 400, mentions: 'body is empty' } },
      { arm: 'empty', contentType: 'application/json', body: () => ' \n\t ', expect: { status: 400, mentions: 'not valid JSON' } },
    ),
  },
  {
    weight: 1000,
    arbitrary: fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 4096 }), fc.constantFrom('application/json', 'application/octet-stream')).map(([bytes, ct]): BadCase => ({
      arm: 'binary',
      contentType: ct,
      body: () => Buffer.from(bytes),
      expect: ct === 'application/json' ? { status: 400 } : { status: 400, mentions: 'content-type must be application/json' },
    })),
  },
  {
    weight: 1000,
    arbitrary: fc
      .oneof(
        fc.jsonValue(),
        fc.constantFrom<unknown>(
          { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' } },
          admittedWorkflow('kfp-v1-compiler/coin.yaml'),
          { ...reviewFor({}), apiVersion: 'admission.k8s.io/v1beta1' },
          { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'u', allowed: true } },
        ),
      )
      .map((v): BadCase => ({ arm: 'JSON that is not an AdmissionReview', contentType: 'application/json', body: () => json(v), expect: { status: 400 } })),
  },
  {
    weight: 300,
    arbitrary: fc.tuple(source, fc.constantFrom('"__proto__":{"polluted":true},', '"constructor":{"prototype":{"polluted":true}},'), fc.constantFrom('{"apiVersion"', '"request":{', '"metadata":{')).map(([s, poison, anchor]): BadCase => ({
      arm: 'prototype poisoning',
      contentType: 'application/json',
      body: () => json(s.review()).replace(anchor, anchor.endsWith('{') ? `${anchor}${poison}` : `{${poison}${anchor.slice(1)}`),
      expect: { status: 400, mentions: 'not valid JSON' },
    })),
  },
  {
    weight: 700,
    arbitrary: fc.tuple(source, fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => b.filter((x) => x >= 0x20 && x !== 0x22 && x !== 0x5c)).filter((b) => b.length > 0)).map(([s, bytes]): BadCase => ({
      arm: 'invalid UTF-8 inside a string',
      contentType: 'application/json',
      body: () => {
        const r = s.review() as { request: { object: { metadata: { annotations?: Obj } } } };
        r.request.object.metadata.annotations = { ...r.request.object.metadata.annotations, [RUN_NAME_ANNOTATION]: 'BYTES-GO-HERE' };
        const [before, after] = json(r).split('BYTES-GO-HERE');
        return Buffer.concat([Buffer.from(before ?? ''), Buffer.from(bytes), Buffer.from(after ?? '')]);
      },
      expect: { status: 200, uid: s.uid },
    })),
  },
  {
    weight: 300,
    arbitrary: fc.tuple(source, fc.constantFrom(1_000, 10_000, 100_000), fc.constantFrom<'[' | '{'>('[', '{'), fc.constantFrom('as the body', 'unclosed', 'in the Workflow', 'as request.uid', 'in request.userInfo')).map(([s, depth, shape, where]): BadCase => {
      const placed = (path: string[]): string => {
        const r = s.review();
        setPath(r, path, 'DEEP-GOES-HERE');
        return json(r).replace('"DEEP-GOES-HERE"', nest(depth, shape));
      };
      const cases: Record<string, Omit<BadCase, 'arm' | 'contentType'>> = {
        'as the body': { body: () => nest(depth, shape), expect: { status: 400 } },
        unclosed: { body: () => (shape === '[' ? '[' : '{"a":').repeat(depth), expect: { status: 400, mentions: 'not valid JSON' } },
        'in the Workflow': { body: () => placed(['request', 'object', 'spec', 'arguments']), expect: { status: 200, uid: s.uid } },
        'as request.uid': { body: () => placed(['request', 'uid']), expect: { status: 400, mentions: 'request.uid' } },
        'in request.userInfo': { body: () => placed(['request', 'userInfo']), expect: { status: 200, uid: s.uid } },
      };
      return { arm: `${depth} levels deep ${where}`, contentType: 'application/json', ...(cases[where] as Omit<BadCase, 'arm' | 'contentType'>) };
    }),
  },
  {
    weight: 60,
    arbitrary: fc.tuple(fc.oneof(fc.integer({ min: -256 * 1024, max: 256 * 1024 }), fc.constantFrom(0, 1)), fc.constantFrom('review', 'garbage', 'streamed garbage'), fc.uuid()).map(([delta, kind, uid]): BadCase => {
      const size = LIMIT + delta;
      const over = size > LIMIT;
      if (kind === 'review') return { arm: `huge review (limit ${delta >= 0 ? '+' : ''}${delta} bytes)`, contentType: 'application/json', body: () => reviewOfSize(size, uid), expect: over ? { status: 413 } : { status: 200, uid } };
      // Garbage is refused for its size before anyone parses it; a stream has no length to check up front.
      return { arm: `huge ${kind}`, contentType: 'application/json', body: () => (kind === 'garbage' ? Buffer.alloc(size, 0x7b) : chunks(size, 0x7b)), expect: over ? { status: 413 } : { status: 400 } };
    }),
  },
];

function problemWith(c: BadCase, a: Answer): string | undefined {
  if (a.status !== c.expect.status) return `status ${a.status}, expected ${c.expect.status}: ${JSON.stringify(a.json).slice(0, 300)}`;
  const body = isObj(a.json) ? a.json : {};
  if (c.expect.status === 200) {
    const r = responseOf(a);
    if (body.kind !== 'AdmissionReview' || r.uid !== c.expect.uid || r.allowed !== true) return `not an allowed answer for ${c.expect.uid}: ${JSON.stringify(a.json).slice(0, 300)}`;
    return undefined;
  }
  if (c.expect.status === 413) return body.message === `body is larger than the ${LIMIT}-byte limit` ? undefined : `413 without the limit: ${JSON.stringify(body)}`;
  if (body.statusCode !== 400 || body.error !== 'Bad Request' || typeof body.message !== 'string' || body.message === '') return `400 without a reason: ${JSON.stringify(a.json).slice(0, 300)}`;
  if (c.expect.mentions !== undefined && !body.message.includes(c.expect.mentions)) return `reason ${JSON.stringify(body.message)} does not say ${JSON.stringify(c.expect.mentions)}`;
  return undefined;
}

async function inPool<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await work(items[next++] as T);
  }));
}

describe(`${BAD_REVIEWS} malformed AdmissionReviews against the real HTTPS server`, () => {
  let s: Started;
  beforeAll(async () => {
    s = await startWebhook();
  });

  it('answers each with a 4xx and a reason (or, when only the Workflow inside is odd, allowed), never a 5xx, each within the apiserver timeout', async () => {
    const cases = fc.sample(fc.oneof(...ARMS), { numRuns: BAD_REVIEWS, seed: SEED });
    const p = pool(s);
    const problems: string[] = [];
    const byArm: Record<string, Record<string, number>> = {};
    let slowest = 0;
    let clientErrors = 0;
    await inPool(cases, 8, async (c) => {
      const body = c.body();
      if (typeof body === 'string' || Buffer.isBuffer(body)) {
        const text = body.toString();
        if (TOKEN_RE.test(text)) bodiesWithTokens++;
        TOKEN_RE.lastIndex = 0;
      }
      let a: Answer;
      try {
        a = await post(p, body, c.contentType);
      } catch (err) {
        problems.push(`${c.arm}: no answer (${err instanceof Error ? err.message : String(err)})`);
        return;
      }
      slowest = Math.max(slowest, a.ms);
      const arm = (byArm[c.arm.replace(/ \(limit .*\)/, '').replace(/^\d+ levels/, 'N levels')] ??= {});
      arm[a.status] = (arm[a.status] ?? 0) + 1;
      arm.slowestMs = Math.max(arm.slowestMs ?? 0, Math.round(a.ms));
      if (a.status >= 400 && a.status < 500) clientErrors++;
      for (const t of tokensIn(responseOf(a).patch)) tokensSeen.add(t);
      const problem = problemWith(c, a);
      if (problem) problems.push(`${c.arm} (content-type ${JSON.stringify(c.contentType)}): ${problem}`);
    });
    console.info(`[webhook-server-adversity] ${JSON.stringify({ reviews: cases.length, seed: SEED, slowestMs: Math.round(slowest), byArm })}`);
    expect(problems.slice(0, 10), `${problems.length} of ${cases.length} answers were wrong (replay: FC_SEED=${SEED})`).toEqual([]);

    // Still standing, and still doing its job.
    expect((await httpsRequest(`${s.server.url}/healthz`, { ca: s.cert.cert })).status).toBe(200);
    const ok = await post(p, JSON.stringify(reviewFor(admittedWorkflow('kfp-v1-compiler/basic.yaml'))), 'application/json');
    expect(responseOf(ok)).toMatchObject({ allowed: true, patchType: 'JSONPatch' });
    expect(await metric(s.registry, 'kfp_notify_admission_requests_total', { outcome: 'invalid' })).toBe(clientErrors);
  });

  it(`takes a review of exactly the ${LIMIT}-byte limit and answers one byte more with 413`, async () => {
    const p = pool(s, 1);
    const uid = randomUUID();
    const at = await post(p, reviewOfSize(LIMIT, uid), 'application/json');
    expect([at.status, responseOf(at).uid, responseOf(at).allowed]).toEqual([200, uid, true]);
    const over = await post(p, reviewOfSize(LIMIT + 1, uid), 'application/json');
    expect([over.status, over.json]).toEqual([413, { statusCode: 413, error: 'Payload Too Large', message: `body is larger than the ${LIMIT}-byte limit` }]);
  });

  it('answers a request that declares a body past the limit with 413 at once, without waiting for the body', async () => {
    const raw = tlsConnect({ host: '127.0.0.1', port: s.server.port, ca: s.cert.cert, servername: 'localhost' });
    cleanups.push(() => void raw.destroy());
    await new Promise<void>((resolve, reject) => raw.once('secureConnect', resolve).once('error', reject));
    let text = '';
    raw.on('data', (d: Buffer) => (text += d.toString()));
    raw.write(`POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n{"apiVersion":`);
    const deadline = Date.now() + ANSWER_BOUND_MS;
    while (!text.includes('\r\n\r\n') && Date.now() < deadline) await sleep(10);
    expect(text.split('\r\n')[0]).toBe('HTTP/1.1 413 Payload Too Large');
    expect(text).toContain(`body is larger than the ${LIMIT}-byte limit`);
  });
});

// ---------- TLS ----------

type Handshake = `connected ${string}` | `refused ${string}`;

/** One TLS handshake at exactly `version`. SECLEVEL=0 lets this client offer TLS 1.0 and 1.1 at all. */
function handshake(port: number, ca: string, version: SecureVersion): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0' }, () => {
      resolve(`connected ${socket.getProtocol() ?? '?'}`);
      socket.end();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(`refused ${err.code ?? err.message}`));
  });
}

const OLD: SecureVersion[] = ['TLSv1', 'TLSv1.1'];
const CURRENT: SecureVersion[] = ['TLSv1.2', 'TLSv1.3'];

/** Old versions refused by the server (its protocol-version alert), current ones admit a Workflow. */
async function expectTlsFloor(url: string, port: number, cert: TestCert): Promise<void> {
  for (const v of OLD) expect(await handshake(port, cert.cert, v), v).toBe('refused ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
  for (const v of CURRENT) {
    expect(await handshake(port, cert.cert, v), v).toBe(`connected ${v}`);
    const res = await httpsRequest(`${url}/mutate`, { ca: cert.cert, minVersion: v, maxVersion: v, body: JSON.stringify(reviewFor(admittedWorkflow('kfp-v1-compiler/coin.yaml'))), headers: { 'content-type': 'application/json' } });
    const r = (JSON.parse(res.body) as { response: Obj }).response;
    expect(r, v).toMatchObject({ allowed: true, patchType: 'JSONPatch' });
    for (const t of tokensIn(r.patch)) tokensSeen.add(t);
  }
}

describe('TLS versions', () => {
  it('this client really speaks TLS 1.0 and 1.1 (against a permissive server), so a refusal below comes from the webhook', async () => {
    const cert = await makeCert();
    const permissive = createTlsServer({ key: cert.key, cert: cert.cert, minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' }, (sock) => sock.end());
    await new Promise<void>((r) => permissive.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => permissive.close(() => r())));
    const port = (permissive.address() as { port: number }).port;
    for (const v of OLD) expect(await handshake(port, cert.cert, v)).toBe(`connected ${v}`);
  });

  it('the webhook refuses TLS 1.0 and 1.1 and serves 1.2 and 1.3, before and after a certificate rotation', async () => {
    const s = await startWebhook();
    await expectTlsFloor(s.server.url, s.server.port, s.cert);
    const next = await makeCert('rotated.localhost');
    tlsKeys.push(next.key);
    writeSecretVolume(s.dir, next);
    const deadline = Date.now() + 10_000;
    while ((await httpsRequest(`${s.server.url}/healthz`, { ca: next.cert }).catch(() => undefined))?.peerFingerprint256 !== next.fingerprint256 && Date.now() < deadline) await sleep(25);
    // The rotated context is a new SecureContext: the floor must come with it.
    await expectTlsFloor(s.server.url, s.server.port, next);
  });

  it('keeps the old certificate, and logs no key material, when a rotation brings a broken or mismatched key', async () => {
    const s = await startWebhook();
    const other = await makeCert('other.localhost');
    tlsKeys.push(other.key);
    const garbageKey = `-----BEGIN PRIVATE KEY-----\n${randomBytes(48).toString('base64')}\n-----END PRIVATE KEY-----\n`;
    tlsKeys.push(garbageKey);
    for (const key of [garbageKey, other.key]) {
      const before = await metric(s.registry, 'kfp_notify_webhook_cert_reloads_total', { result: 'rejected' });
      writeSecretVolume(s.dir, { cert: s.cert.cert, key });
      const deadline = Date.now() + 10_000;
      while ((await metric(s.registry, 'kfp_notify_webhook_cert_reloads_total', { result: 'rejected' })) === before && Date.now() < deadline) await sleep(25);
      expect(await metric(s.registry, 'kfp_notify_webhook_cert_reloads_total', { result: 'rejected' })).toBe(before + 1);
      expect((await httpsRequest(`${s.server.url}/healthz`, { ca: s.cert.cert })).peerFingerprint256).toBe(s.cert.fingerprint256);
    }
  });

  it('survives bytes that are not TLS at all (plain HTTP, random bytes, an SSLv2 hello) and keeps serving', async () => {
    const s = await startWebhook();
    const junk = [Buffer.from('POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}'), randomBytes(4096), sslv2Hello()];
    for (const bytes of junk) {
      const closed = await new Promise<boolean>((resolve) => {
        const sock = netConnect({ host: '127.0.0.1', port: s.server.port }, () => sock.write(bytes));
        const timer = setTimeout(() => (sock.destroy(), resolve(false)), ANSWER_BOUND_MS);
        sock.on('close', () => (clearTimeout(timer), resolve(true)));
        sock.on('error', () => undefined);
        sock.resume();
      });
      expect(closed, 'the server hangs up on non-TLS bytes').toBe(true);
    }
    expect((await httpsRequest(`${s.server.url}/healthz`, { ca: s.cert.cert })).status).toBe(200);
  });

  it('`kfp-notify webhook` (the real process) refuses TLS 1.0 and 1.1 and serves 1.2 and 1.3', async () => {
    const dir = tempDir();
    const cert = await makeCert();
    tlsKeys.push(cert.key);
    writeFileSync(join(dir, 'tls.crt'), cert.cert);
    writeFileSync(join(dir, 'tls.key'), cert.key);
    writeFileSync(join(dir, 'keys'), `${HOOK_SECRET}\n`);
    const child: ChildProcessWithoutNullStreams = spawn(process.execPath, [BIN, 'webhook', '--port', '0', '--host', '127.0.0.1', '--tls-cert', join(dir, 'tls.crt'), '--tls-key', join(dir, 'tls.key'), '--hook-key-file', join(dir, 'keys'), '--data-dir', join(dir, 'data'), '--log-level', 'trace'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((r) => child.on('close', r));
    cleanups.push(() => void (child.exitCode === null && child.kill('SIGKILL')));
    let out = '';
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n').find((l) => l.includes('"webhook listening"'));
        if (line) resolve(String((JSON.parse(line) as { url: string }).url));
      });
      void exited.then((code) => reject(new Error(`exited ${code}: ${out}`)));
    });
    await expectTlsFloor(url, Number(new URL(url).port), cert);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    logLines.push(...out.split('\n').filter((l) => l.trim() !== ''));
  });
});

/** A complete SSLv2-format ClientHello (7 cipher specs, 16-byte challenge): what very old clients send first. */
function sslv2Hello(): Buffer {
  const specs = Buffer.from('0700c0030080010080060040020080040080080080', 'hex');
  const body = Buffer.concat([Buffer.from([0x01, 0x00, 0x02, 0x00, specs.length, 0x00, 0x00, 0x00, 0x10]), specs, randomBytes(16)]);
  return Buffer.concat([Buffer.from([0x80, body.length]), body]);
}

// ---------- secrets ----------

/** Every secret a log line could carry, in every encoding, checked with the slow suite's shared scanner (which also flags any `kn1.` token). */
function secretsIn(lines: readonly string[]): string[] {
  const secret = Buffer.from(HOOK_SECRET);
  const named: Record<string, string> = {
    'the hook key': HOOK_SECRET,
    'the hook key (base64)': secret.toString('base64'),
    'the hook key (hex)': secret.toString('hex'),
    'a private key PEM marker': 'PRIVATE KEY',
  };
  // A token's MAC without its `kn1.` prefix; a sample keeps the scan fast.
  [...tokensSeen].slice(0, 50).forEach((t, i) => (named[`the MAC of hook token ${i}`] = t.split('.')[2] ?? t));
  tlsKeys.forEach((k, i) => k.split('\n').filter((l) => l.length >= 16 && !l.startsWith('-----')).forEach((l, j) => (named[`line ${j} of TLS key ${i}`] = l)));
  return leaks(lines.join('\n'), named);
}

// Runs last, over what every test above logged: run the whole file, not this block alone.
describe('secrets never reach the logs', () => {
  it('the check finds a planted secret (it can fail)', () => {
    const token = [...tokensSeen][0] ?? 'kn1.00000000.planted';
    expect(secretsIn([JSON.stringify({ msg: 'x', err: `bad call with ${token}` })])).not.toEqual([]);
    expect(secretsIn([JSON.stringify({ reason: (tlsKeys[0] ?? '').split('\n')[1] })])).not.toEqual([]);
    expect(secretsIn([JSON.stringify({ key: Buffer.from(HOOK_SECRET).toString('hex') })])).not.toEqual([]);
    expect(secretsIn([JSON.stringify({ msg: 'hooks injected', kfpRunId: 'r-1' })])).toEqual([]);
  });

  it('no hook key, hook token or private key material in any line written by the webhooks above (trace level)', () => {
    // The runs above must have put secrets within reach of the logs, or this proves nothing.
    expect(tokensSeen.size, 'hook tokens minted into answers').toBeGreaterThan(10);
    expect(bodiesWithTokens, 'requests that carried hook tokens (already-injected Workflows)').toBeGreaterThan(BAD_REVIEWS / 100);
    expect(tlsKeys.length).toBeGreaterThan(3);
    const messages = new Set(logLines.map((l) => String((JSON.parse(l) as { msg?: unknown }).msg)));
    for (const m of ['webhook listening', 'hooks injected', 'admitted without hooks (skipped)', 'admitted without hooks (failed open)', 'bad admission request', 'new serving certificate rejected; keeping the old one', 'serving certificate reloaded']) {
      expect(messages, m).toContain(m);
    }
    console.info(`[webhook-server-adversity] log lines scanned: ${logLines.length}`);
    expect(secretsIn(logLines).slice(0, 5)).toEqual([]);
  });
});
