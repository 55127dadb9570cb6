import jsonPatch from 'fast-json-patch';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { hookKeyFromSecret } from '../../common/hook-token.js';
import { admissionResponse, admissionResponseJson } from '../../webhook/admission-review.js';
import { injectWorkflow, patchText, type InjectResult } from '../../webhook/inject/index.js';
import { defaultInjectOptions, type InjectOptions } from '../../webhook/inject/options.js';
import type { Template, Workflow } from '../../common/kfp/workflow-types.js';
import { buildWebhookApp, type Injector } from '../../webhook/server.js';
import { admittedFixture, FIXTURES_DIR, TEST_HOOK_KEY_SECRET, workflowFixtures } from '../helpers/fixtures.js';
import { reviewFor } from '../helpers/tls.js';

/**
 * The injector copies only what it edits (copy on write) and diffs with identity short-cuts; these
 * tests hold it to the same answers as a full copy and a full diff, on every real fixture.
 */

const hookKey = hookKeyFromSecret(TEST_HOOK_KEY_SECRET);
const opts = (partial: Partial<InjectOptions> = {}): InjectOptions => ({ ...defaultInjectOptions({ hookKey }), ...partial });
const fixture = (name: string) => admittedFixture(`${FIXTURES_DIR}/${name}`) as Workflow;
const json = (v: unknown): string => JSON.stringify(v);
const bytes = (v: unknown): number => Buffer.byteLength(JSON.stringify(v));

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

function injectedOrThrow(r: InjectResult): Workflow {
  if (r.outcome !== 'injected') throw new Error(`expected injection, got skipped: ${r.reason}`);
  return r.workflow as Workflow;
}

const templatesOf = (wf: Workflow): Template[] => wf.spec?.templates ?? [];
const fixtures = workflowFixtures().flatMap((f) => (['container', 'http'] as const).map((mode) => [f.name, mode] as const));

describe('copy on write, on every fixture', () => {
  it.each(fixtures)('%s (%s): a frozen input injects, stays as it was, and matches a full diff', (name, mode) => {
    const input = fixture(name);
    const before = json(input);
    // Frozen: any edit of the input would throw, which the injector reports as an internal-error skip.
    const r = injectWorkflow(deepFreeze(input), opts({ mode, argoVersion: '3.5.14' }));
    const out = injectedOrThrow(r);
    expect(json(input)).toBe(before);
    // The same patch a diff of two unrelated copies gives, op for op, and its JSON text exactly.
    expect(r.patch).toEqual(jsonPatch.compare(structuredClone(input), structuredClone(out)));
    expect(patchText(r.patch)).toBe(JSON.stringify(r.patch));
  });

  it.each(fixtures)('%s (%s): what was not edited is shared with the input; what was, is a copy', (name, mode) => {
    const input = fixture(name);
    const out = injectedOrThrow(injectWorkflow(input, opts({ mode, argoVersion: '3.5.14' })));
    const ins = templatesOf(input);
    const outs = templatesOf(out);
    let shared = 0;
    ins.forEach((t, i) => {
      const o = outs[i];
      if (json(o) === json(t)) {
        expect(o, `template ${String(t.name)} unchanged`).toBe(t);
        shared++;
      } else {
        expect(o, `template ${String(t.name)} edited`).not.toBe(t);
        // Inside an edited DAG, the tasks the injector left alone are still the input's own.
        const inTasks = t.dag?.tasks ?? [];
        (o?.dag?.tasks ?? []).forEach((task, j) => {
          if (json(task) === json(inTasks[j])) expect(task).toBe(inTasks[j]);
        });
      }
    });
    expect(shared).toBeGreaterThan(0);
    expect(out.spec).not.toBe(input.spec);
    expect(out.metadata).not.toBe(input.metadata);
    if (input.spec?.arguments !== undefined) expect(out.spec?.arguments).toBe(input.spec.arguments);
    if (input.metadata?.labels !== undefined) expect(out.metadata?.labels).toBe(input.metadata.labels);
  });
});

describe('the size guard and its inputBytes hint', () => {
  const NAME = 'kfp-v1-compiler/parallelfor_item_argument_resolving.yaml';

  /** A Workflow whose `spec.arguments` counts how often something serializes it (an unedited subtree). */
  function counting(): { wf: Workflow; serialized: () => number } {
    const wf = fixture(NAME);
    let n = 0;
    const args = wf.spec?.arguments ?? {};
    const spec = wf.spec ?? {};
    spec.arguments = { ...args, toJSON: () => (n++, { ...args }) };
    return { wf, serialized: () => n };
  }

  it('without a hint the input is serialized exactly once; with one, never', () => {
    const a = counting();
    expect(injectWorkflow(a.wf, opts()).outcome).toBe('injected');
    expect(a.serialized()).toBe(1);
    const b = counting();
    const hint = 10 * bytes(b.wf);
    const seenBefore = b.serialized();
    expect(injectWorkflow(b.wf, opts({ inputBytes: hint })).outcome).toBe('injected');
    expect(b.serialized()).toBe(seenBefore);
  });

  it('decides exactly whatever the hint: a loose bound near the limit falls back to measuring', () => {
    const input = fixture(NAME);
    const full = injectWorkflow(input, opts());
    const size = bytes(full.workflow);
    const loose = bytes(input) + 50_000;
    for (const hint of [{}, { inputBytes: bytes(input) }, { inputBytes: loose }]) {
      const fits = injectWorkflow(input, opts({ sizeLimitBytes: size, ...hint }));
      expect(fits.outcome).toBe('injected');
      expect(fits.patch).toEqual(full.patch);
      expect(json(fits.workflow)).toBe(json(full.workflow));
      const tight = injectWorkflow(input, opts({ sizeLimitBytes: size - 1, ...hint }));
      expect(tight.reason).toBe(`too large after injection: ${size} bytes > size limit ${size - 1} bytes (${bytes(input)} bytes before)`);
    }
  });

  it.each([-1, 1.5, Number.NaN, '100'])('a hint of %s is refused with a reason naming it', (hint) => {
    const r = injectWorkflow(fixture(NAME), { ...opts(), inputBytes: hint as number });
    expect(r.outcome).toBe('skipped');
    expect(r.reason).toBe(`invalid options: inputBytes: must be a whole number of bytes, got ${JSON.stringify(hint)}`);
  });

  it('settings checked once are re-checked when they change (a config reload)', () => {
    const input = fixture(NAME);
    expect(injectWorkflow(input, opts()).outcome).toBe('injected');
    expect(injectWorkflow(input, opts({ argoVersion: 'latest' })).reason).toMatch(/^invalid options: argoVersion: "latest" is not a version/);
    expect(injectWorkflow(input, opts({ argoVersion: '3.4.16' })).outcome).toBe('injected');
    expect(injectWorkflow(input, opts({ argoVersion: '3.4.16', namespace: 'Not_A_Namespace' })).reason).toBe(
      'invalid options: namespace: "Not_A_Namespace" is not a Kubernetes namespace name',
    );
  });
});

describe('the answer as JSON text', () => {
  it('admissionResponseJson writes exactly what JSON.stringify writes', () => {
    const r = injectWorkflow(fixture('kfp-v1-compiler/basic.yaml'), opts());
    const cases = [
      admissionResponse('uid-1'),
      admissionResponse('uid-"2"\n', { warnings: ['kfp-notify: a "quoted" warning', 'ünïcode'] }),
      admissionResponse('uid-3', { patch: r.patch, warnings: ['w'] }),
    ];
    // A hand-made response (its patch not written by admissionResponse) goes through JSON.stringify.
    const handMade = admissionResponse('uid-4');
    handMade.response.patchType = 'JSONPatch';
    handMade.response.patch = 'not "base64"\u2028';
    for (const review of [...cases, handMade]) expect(admissionResponseJson(review)).toBe(JSON.stringify(review));
  });

  it('the webhook tells the injector the request body length as its size hint (real app, no TLS)', async () => {
    const seen: (number | undefined)[] = [];
    const inject: Injector = (object, o) => {
      seen.push(o.inputBytes);
      return injectWorkflow(object, o);
    };
    const options = defaultInjectOptions({ hookKey });
    const app = buildWebhookApp({ logger: pino({ level: 'silent' }), registry: new Registry(), getInjectOptions: () => options, inject });
    try {
      const body = JSON.stringify(reviewFor(fixture('kfp-v1-compiler/basic.yaml'), { namespace: 'team-a' }));
      const res = await app.inject({ method: 'POST', url: '/mutate', headers: { 'content-type': 'application/json' }, payload: body });
      expect(res.statusCode).toBe(200);
      expect(seen).toEqual([Buffer.byteLength(body)]);
      const answer = res.json<{ response: { patch: string } }>();
      expect(res.body).toBe(JSON.stringify(answer));
      expect(JSON.parse(Buffer.from(answer.response.patch, 'base64').toString('utf8'))).toEqual(injectWorkflow(fixture('kfp-v1-compiler/basic.yaml'), { ...options, namespace: 'team-a' }).patch);
    } finally {
      await app.close();
    }
  });
});
