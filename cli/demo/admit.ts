import { randomUUID } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import type { Operation } from 'fast-json-patch';
import type { Workflow } from '../../common/kfp/workflow-types.js';

/** The apiserver's side of admission: POST an AdmissionReview over HTTPS, trusting the webhook's cert. */
export function admit(webhookUrl: string, ca: string, wf: Workflow, namespace: string): Promise<{ patch: Operation[]; warnings: string[] }> {
  const review = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: randomUUID(),
      kind: { group: 'argoproj.io', version: 'v1alpha1', kind: 'Workflow' },
      resource: { group: 'argoproj.io', version: 'v1alpha1', resource: 'workflows' },
      namespace,
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kubeflow:ml-pipeline' },
      object: wf,
      dryRun: false,
    },
  };
  const body = JSON.stringify(review);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${webhookUrl}/mutate?timeout=5s`,
      { method: 'POST', ca, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          try {
            const response = (JSON.parse(text) as { response?: { patch?: string; warnings?: string[] } }).response ?? {};
            const patch = response.patch ? (JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as Operation[]) : [];
            resolve({ patch, warnings: response.warnings ?? [] });
          } catch (err) {
            reject(new Error(`webhook answered HTTP ${res.statusCode}: ${text.slice(0, 200)} (${String(err)})`));
          }
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

