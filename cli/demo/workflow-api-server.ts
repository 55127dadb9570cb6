import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

/**
 * The demo's stand-in for the Kubernetes API, named so: it serves only what the callback's cluster
 * side reads of Argo Workflows (list, watch from a resourceVersion, get one), for the Workflows the
 * demo plays. The demo writes each status as Argo's controller would, and the callback's real status
 * watcher and enricher read it through @kubernetes/client-node, as they would in a cluster: no
 * special path for the demo.
 */

type Obj = Record<string, unknown> & { metadata?: Record<string, unknown> };

export interface WorkflowApiServer {
  kubeConfig(): KubeConfig;
  /** Creates or replaces a Workflow (a new resourceVersion; watchers get ADDED or MODIFIED). */
  apply(wf: Obj): void;
  close(): Promise<void>;
}

const PREFIX = '/apis/argoproj.io/v1alpha1';
const text = (v: unknown): string => (typeof v === 'string' ? v : '');

export async function startWorkflowApiServer(): Promise<WorkflowApiServer> {
  const objects = new Map<string, Obj>();
  const history: { rv: number; type: 'ADDED' | 'MODIFIED'; object: Obj }[] = [];
  const watches = new Set<{ res: ServerResponse; from: number }>();
  let rv = 0;
  const keyOf = (o: Obj) => `${text(o.metadata?.namespace)}/${text(o.metadata?.name)}`;
  const line = (type: string, object: Obj) => `${JSON.stringify({ type, object })}\n`;

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const json = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const one = /^\/apis\/argoproj\.io\/v1alpha1\/namespaces\/([^/]+)\/workflows\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'GET' && one) {
      const hit = objects.get(`${decodeURIComponent(one[1] ?? '')}/${decodeURIComponent(one[2] ?? '')}`);
      return hit ? json(200, hit) : json(404, { kind: 'Status', status: 'Failure', reason: 'NotFound', code: 404 });
    }
    if (req.method !== 'GET' || url.pathname !== `${PREFIX}/workflows`) return json(404, { kind: 'Status', status: 'Failure', reason: 'NotFound', code: 404 });
    if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1') {
      const from = Number(url.searchParams.get('resourceVersion') ?? '0') || 0;
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      for (const h of history) if (h.rv > from) res.write(line(h.type, h.object));
      const w = { res, from };
      watches.add(w);
      req.on('close', () => watches.delete(w));
      return;
    }
    return json(200, { apiVersion: 'argoproj.io/v1alpha1', kind: 'WorkflowList', metadata: { resourceVersion: String(rv) }, items: [...objects.values()] });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    kubeConfig() {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'demo', server: url, skipTLSVerify: true }],
        users: [{ name: 'demo' }],
        contexts: [{ name: 'demo', cluster: 'demo', user: 'demo', namespace: 'kfp-notify' }],
        currentContext: 'demo',
      });
      return kc;
    },
    apply(wf) {
      const object = structuredClone(wf);
      const key = keyOf(object);
      const type = objects.has(key) ? 'MODIFIED' : 'ADDED';
      object.metadata = { ...object.metadata, resourceVersion: String(++rv) };
      objects.set(key, object);
      history.push({ rv, type, object });
      for (const w of watches) w.res.write(line(type, object));
    },
    async close() {
      for (const w of watches) w.res.end();
      watches.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
