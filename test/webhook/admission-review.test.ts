import { describe, expect, it } from 'vitest';
import type { Operation } from 'fast-json-patch';
import {
  MAX_WARNING_CHARS,
  admissionResponse,
  classifySkip,
  parseAdmissionReview,
  requestSkipReason,
  shortWarning,
  type AdmissionRequest,
} from '../../webhook/admission-review.js';

function review(request: Record<string, unknown>, top: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request, ...top };
}

const workflowRequest = {
  uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
  kind: { group: 'argoproj.io', version: 'v1alpha1', kind: 'Workflow' },
  resource: { group: 'argoproj.io', version: 'v1alpha1', resource: 'workflows' },
  namespace: 'team-a',
  operation: 'CREATE',
  userInfo: { username: 'system:serviceaccount:kubeflow:ml-pipeline' },
  object: { apiVersion: 'argoproj.io/v1alpha1', kind: 'Workflow', metadata: { generateName: 'hello-' } },
  oldObject: null,
  dryRun: false,
};

describe('parseAdmissionReview', () => {
  it('reads the fields the webhook uses from a v1 AdmissionReview', () => {
    const parsed = parseAdmissionReview(review(workflowRequest));
    expect(parsed).toEqual({
      ok: true,
      request: {
        uid: workflowRequest.uid,
        kind: workflowRequest.kind,
        operation: 'CREATE',
        namespace: 'team-a',
        name: '',
        object: workflowRequest.object,
        dryRun: false,
      },
    });
  });

  it('accepts DELETE with a null object and a core-group kind without a group field', () => {
    const parsed = parseAdmissionReview(review({ ...workflowRequest, operation: 'DELETE', object: null, kind: { version: 'v1', kind: 'Pod' } }));
    expect(parsed.ok && parsed.request.kind).toEqual({ group: '', version: 'v1', kind: 'Pod' });
    expect(parsed.ok && parsed.request.object).toBeNull();
  });

  // [ body, words the reason must contain ]
  it.each([
    [null, 'JSON object'],
    [[1, 2], 'a list'],
    ['AdmissionReview', 'JSON object'],
    [{ apiVersion: 'admission.k8s.io/v1', kind: 'Pod', request: workflowRequest }, 'kind must be "AdmissionReview"'],
    [review(workflowRequest, { apiVersion: 'admission.k8s.io/v1beta1' }), 'admissionReviewVersions'],
    [review(workflowRequest, { apiVersion: undefined }), 'apiVersion must be'],
    [{ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, 'request must be an object, got nothing'],
    [review({ ...workflowRequest, uid: '' }), 'request.uid'],
    [review({ ...workflowRequest, uid: 42 }), 'request.uid'],
    [review({ ...workflowRequest, operation: 'PATCH' }), 'request.operation'],
    [review({ ...workflowRequest, kind: 'Workflow' }), 'request.kind'],
    [review({ ...workflowRequest, kind: { group: 1, version: 'v1', kind: 'Workflow' } }), 'request.kind.group'],
    [review({ ...workflowRequest, namespace: ['a'] }), 'request.namespace'],
    [review({ ...workflowRequest, name: 7 }), 'request.name'],
    [review({ ...workflowRequest, object: undefined }), 'request.object must be an object on CREATE'],
    [review({ ...workflowRequest, object: 'yaml: text' }), 'request.object'],
    [review({ ...workflowRequest, dryRun: 'yes' }), 'request.dryRun'],
  ])('rejects %j with a reason naming the problem', (body, words) => {
    const parsed = parseAdmissionReview(body);
    expect(parsed.ok).toBe(false);
    expect(parsed.ok ? '' : parsed.reason).toContain(words);
  });
});

describe('requestSkipReason', () => {
  const base = (parseAdmissionReview(review(workflowRequest)) as { ok: true; request: AdmissionRequest }).request;
  it('lets a Workflow CREATE through to the injector', () => {
    expect(requestSkipReason(base)).toBeUndefined();
  });
  it('skips other kinds and other operations, saying which', () => {
    expect(requestSkipReason({ ...base, kind: { group: '', version: 'v1', kind: 'Pod' } })).toBe('not an Argo Workflow (core/v1 Pod)');
    expect(requestSkipReason({ ...base, operation: 'UPDATE' })).toBe('operation UPDATE is not CREATE');
  });
});

describe('admissionResponse', () => {
  const patch: Operation[] = [
    { op: 'add', path: '/metadata/annotations/kfp-notify.kubeflow.org~1injected', value: 'v1' },
    { op: 'add', path: '/spec/templates/-', value: { name: 'kfp-notify-hook' } },
  ];

  it('carries the uid, allowed, and the patch as base64 JSON', () => {
    const out = admissionResponse('uid-1', { patch });
    expect(out.apiVersion).toBe('admission.k8s.io/v1');
    expect(out.kind).toBe('AdmissionReview');
    expect(out.response.uid).toBe('uid-1');
    expect(out.response.allowed).toBe(true);
    expect(out.response.patchType).toBe('JSONPatch');
    expect(JSON.parse(Buffer.from(out.response.patch ?? '', 'base64').toString('utf8'))).toEqual(patch);
    expect(out.response).not.toHaveProperty('warnings');
  });

  it('leaves patchType and patch out when there is nothing to patch', () => {
    for (const verdict of [undefined, {}, { patch: [] }]) {
      const out = admissionResponse('uid-2', verdict);
      expect(out.response).toEqual({ uid: 'uid-2', allowed: true });
    }
  });

  it('allows with warnings, each short, prefixed and on one line', () => {
    const long = `size limit exceeded: ${'x'.repeat(300)}`;
    const out = admissionResponse('uid-3', { warnings: ['hooks not injected:\ninternal error', long] });
    expect(out.response.allowed).toBe(true);
    expect(out.response.warnings).toEqual(['kfp-notify: hooks not injected: internal error', expect.stringMatching(/^kfp-notify: size limit exceeded: x+\.\.\.$/)]);
    expect(out.response.warnings?.[1]).toHaveLength(MAX_WARNING_CHARS);
  });
});

describe('shortWarning', () => {
  it('strips control and non-ASCII characters that an HTTP Warning header cannot carry', () => {
    expect(shortWarning('tab\there, bell\u0007, em\u2014dash')).toBe('kfp-notify: tab here, bell , em dash');
  });
});

describe('classifySkip', () => {
  // [ reason as the injector (webhook/inject/skip.ts, index.ts) or the route words it, label, warn ]
  it.each([
    ['already injected (annotation kfp-notify.kubeflow.org/injected is set)', 'already_injected', false],
    ['opted out: annotation kfp-notify.kubeflow.org/inject=false', 'opted_out', false],
    ['not a KFP workflow: label pipeline/runid is missing', 'not_kfp', false],
    ['not an Argo Workflow: Pod v1', 'not_workflow', false],
    ['not an Argo Workflow (core/v1 Pod)', 'not_workflow', false],
    ['operation UPDATE is not CREATE', 'not_create', false],
    ['internal error: cannot read properties of undefined', 'internal_error', true],
    ['invalid options: sizeLimitBytes: must be a positive whole number of bytes, got 0', 'invalid_options', true],
    ['malformed Workflow: spec.templates is not a list', 'malformed', true],
    ['not a Kubernetes object (got a list)', 'malformed', true],
    ['name collision: the Workflow already has a template named kfp-notify-hook', 'name_collision', true],
    ['run id conflict: spec.podMetadata.labels says "a", the Workflow\'s label says "b"', 'run_id_conflict', true],
    ['spec.workflowTemplateRef is set: the templates live in a WorkflowTemplate', 'template_ref', true],
    ['spec.onExit and spec.hooks.exit are both set (Argo ignores hooks.exit)', 'exit_handler', true],
    ['spec.hooks.exit passes artifacts; wrapping it is not supported', 'exit_handler', true],
    ['too large after injection: 1600000 bytes > size limit 1048576 bytes (1500000 bytes before)', 'size_limit', true],
    ['something nobody foresaw', 'other', true],
  ])('%s → %s', (reason, label, warn) => {
    expect(classifySkip(reason)).toEqual({ label, warn });
  });
});
