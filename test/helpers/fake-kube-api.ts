import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';

/**
 * A small stand-in for kube-apiserver, on 127.0.0.1 (port 0), answering the real paths with
 * real-shaped objects: lists with `metadata.resourceVersion` and `limit`/`continue` paging,
 * newline-delimited watches kept open (ADDED / MODIFIED / DELETED, replayed from a resourceVersion,
 * `ERROR` 410 "Expired" when that version is too old, closed after `timeoutSeconds`), GETs with a
 * 404 `Status`, label selectors (`k`, `!k`, `k=v`, `k!=v`) and `metadata.name` field selectors.
 *
 * Resources: argoproj.io/v1alpha1 workflows (namespaced, also listed across namespaces), and core v1
 * configmaps and secrets, and coordination.k8s.io/v1 leases, which can also be created (POST, 409
AlreadyExists) and replaced (PUT, 409 Conflict on a stale resourceVersion) as leader election does. Tests push changes with `apply` / `remove`, cut watches with
 * `dropWatches`, expire history with `expireHistory`, and inject failures with `failNext`.
 */

export type Obj = Record<string, unknown> & { metadata?: Record<string, unknown> };

interface Kind {
  /** URL prefix before `namespaces/…`: `/apis/argoproj.io/v1alpha1` or `/api/v1`. */
  prefix: string;
  plural: string;
  apiVersion: string;
  kind: string;
  /** Core lists leave apiVersion/kind off their items; custom resource lists keep them. */
  itemsCarryKind: boolean;
}

const KINDS: Kind[] = [
  { prefix: '/apis/argoproj.io/v1alpha1', plural: 'workflows', apiVersion: 'argoproj.io/v1alpha1', kind: 'Workflow', itemsCarryKind: true },
  { prefix: '/api/v1', plural: 'configmaps', apiVersion: 'v1', kind: 'ConfigMap', itemsCarryKind: false },
  { prefix: '/api/v1', plural: 'secrets', apiVersion: 'v1', kind: 'Secret', itemsCarryKind: false },
  { prefix: '/apis/coordination.k8s.io/v1', plural: 'leases', apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', itemsCarryKind: true },
];

interface HistoryEntry {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  kind: Kind;
  object: Obj;
}

interface OpenWatch {
  kind: Kind;
  namespace?: string;
  match: (o: Obj) => boolean;
  res: ServerResponse;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
}

interface Failure {
  remaining: number;
  status: number;
  matches: (r: RecordedRequest) => boolean;
}

export interface FakeKubeApi {
  url: string;
  kubeConfig(): KubeConfig;
  /** Create or replace an object (kind from apiVersion/kind); returns the stored copy with rv/uid set. */
  apply(obj: Obj): Obj;
  remove(kind: 'Workflow' | 'ConfigMap' | 'Secret' | 'Lease', namespace: string, name: string): void;
  get(kind: 'Workflow' | 'ConfigMap' | 'Secret' | 'Lease', namespace: string, name: string): Obj | undefined;
  /** Destroys every open watch connection (as a network cut or an API server restart would). */
  dropWatches(): void;
  /** Ends every open watch cleanly, as the API server does when a watch's timeoutSeconds runs out. */
  endWatches(): void;
  /** Forget the event history: a watch from any earlier resourceVersion gets a 410 Expired. */
  expireHistory(): void;
  /** The next `count` requests that match answer `status` with a Status body. */
  failNext(count: number, status: number, matches?: (r: RecordedRequest) => boolean): void;
  requests: RecordedRequest[];
  /** core/v1 Events POSTed to the server, in order. */
  createdEvents: Obj[];
  openWatches(): number;
  close(): Promise<void>;
}

function kindOf(name: string): Kind {
  const k = KINDS.find((x) => x.kind === name);
  if (!k) throw new Error(`fake-kube-api: unsupported kind ${name}`);
  return k;
}

function meta(o: Obj): Record<string, unknown> {
  o.metadata ??= {};
  return o.metadata;
}

function strOf(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function labelsOf(o: Obj): Record<string, string> {
  const l = o.metadata?.labels;
  return l && typeof l === 'object' ? (l as Record<string, string>) : {};
}

/** Equality-based label selectors, as the API server parses them (`a,b=c,!d,e!=f`). */
export function labelSelectorMatcher(selector: string | undefined): (o: Obj) => boolean {
  const terms = (selector ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  return (o) => {
    const labels = labelsOf(o);
    return terms.every((t) => {
      let m: RegExpExecArray | null;
      if ((m = /^!(.+)$/.exec(t))) return !(m[1]! in labels);
      if ((m = /^(.+?)!=(.*)$/.exec(t))) return labels[m[1]!] !== m[2];
      if ((m = /^(.+?)==?(.*)$/.exec(t))) return labels[m[1]!] === m[2];
      return t in labels;
    });
  };
}

function fieldSelectorMatcher(selector: string | undefined): (o: Obj) => boolean {
  const terms = (selector ?? '').split(',').filter((t) => t !== '');
  return (o) =>
    terms.every((t) => {
      const m = /^metadata\.(name|namespace)==?(.*)$/.exec(t);
      if (!m) return false;
      return strOf(o.metadata?.[m[1]!]) === m[2];
    });
}

function status(code: number, reason: string, message: string): Obj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

const REASONS: Record<number, string> = { 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 410: 'Expired', 500: 'InternalError', 503: 'ServiceUnavailable' };

export async function startFakeKubeApi(): Promise<FakeKubeApi> {
  const store = new Map<string, { kind: Kind; object: Obj }>();
  let history: HistoryEntry[] = [];
  let rv = 1000;
  /** Watches asking for a version at or below this get 410 Expired. */
  let oldestWatchable = 0;
  const watches = new Set<OpenWatch>();
  const failures: Failure[] = [];
  const requests: RecordedRequest[] = [];
  const createdEvents: Obj[] = [];

  const keyOf = (kind: Kind, ns: string, name: string): string => `${kind.plural}|${ns}|${name}`;

  function emit(entry: HistoryEntry): void {
    history.push(entry);
    for (const w of watches) {
      if (w.kind !== entry.kind) continue;
      if (w.namespace && w.namespace !== strOf(entry.object.metadata?.namespace)) continue;
      if (!w.match(entry.object)) continue;
      w.res.write(`${JSON.stringify({ type: entry.type, object: entry.object })}\n`);
    }
  }

  function apply(input: Obj): Obj {
    const kind = kindOf(strOf(input.kind));
    const obj = structuredClone(input);
    const m = meta(obj);
    const ns = strOf(m.namespace) || 'default';
    const name = strOf(m.name);
    if (!name) throw new Error('fake-kube-api: apply needs metadata.name');
    m.namespace = ns;
    const key = keyOf(kind, ns, name);
    const prev = store.get(key);
    m.uid = strOf(m.uid) || strOf(prev?.object.metadata?.uid) || randomUUID();
    m.creationTimestamp = strOf(m.creationTimestamp) || strOf(prev?.object.metadata?.creationTimestamp) || new Date().toISOString();
    m.resourceVersion = String(++rv);
    obj.apiVersion = kind.apiVersion;
    store.set(key, { kind, object: obj });
    emit({ rv, type: prev ? 'MODIFIED' : 'ADDED', kind, object: obj });
    return structuredClone(obj);
  }

  function remove(kindName: 'Workflow' | 'ConfigMap' | 'Secret' | 'Lease', ns: string, name: string): void {
    const kind = kindOf(kindName);
    const key = keyOf(kind, ns, name);
    const prev = store.get(key);
    if (!prev) return;
    store.delete(key);
    const obj = structuredClone(prev.object);
    meta(obj).resourceVersion = String(++rv);
    emit({ rv, type: 'DELETED', kind, object: obj });
  }

  function send(res: ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  function list(kind: Kind, ns: string | undefined, q: Record<string, string>): Obj {
    const lm = labelSelectorMatcher(q.labelSelector);
    const fm = fieldSelectorMatcher(q.fieldSelector);
    const all = [...store.values()]
      .filter((e) => e.kind === kind && (!ns || e.object.metadata?.namespace === ns) && lm(e.object) && fm(e.object))
      .map((e) => e.object)
      .sort((a, b) => `${strOf(a.metadata?.namespace)}/${strOf(a.metadata?.name)}`.localeCompare(`${strOf(b.metadata?.namespace)}/${strOf(b.metadata?.name)}`));
    const start = q.continue ? Number(Buffer.from(q.continue, 'base64url').toString()) : 0;
    const limit = q.limit ? Number(q.limit) : 0;
    const page = limit > 0 ? all.slice(start, start + limit) : all.slice(start);
    const next = limit > 0 && start + limit < all.length ? Buffer.from(String(start + limit)).toString('base64url') : undefined;
    const items = page.map((o) => {
      const c = structuredClone(o);
      if (!kind.itemsCarryKind) {
        delete c.apiVersion;
        delete c.kind;
      }
      return c;
    });
    return {
      apiVersion: kind.apiVersion,
      kind: `${kind.kind}List`,
      metadata: { resourceVersion: String(rv), ...(next ? { continue: next } : {}) },
      items,
    };
  }

  function watch(kind: Kind, ns: string | undefined, q: Record<string, string>, req: IncomingMessage, res: ServerResponse): void {
    const lm = labelSelectorMatcher(q.labelSelector);
    const fm = fieldSelectorMatcher(q.fieldSelector);
    const w: OpenWatch = { kind, namespace: ns, match: (o) => lm(o) && fm(o), res };
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    // The API server answers a watch at once, before any event.
    res.flushHeaders();
    const from = q.resourceVersion ? Number(q.resourceVersion) : 0;
    if (from > 0 && from < oldestWatchable) {
      const s = status(410, 'Expired', `too old resource version: ${from} (${oldestWatchable})`);
      res.end(`${JSON.stringify({ type: 'ERROR', object: s })}\n`);
      return;
    }
    if (from > 0) {
      for (const h of history) {
        if (h.rv <= from || h.kind !== kind) continue;
        if (ns && strOf(h.object.metadata?.namespace) !== ns) continue;
        if (w.match(h.object)) res.write(`${JSON.stringify({ type: h.type, object: h.object })}\n`);
      }
    } else {
      // No version: the API server starts with synthetic ADDED events for the current state.
      for (const o of (list(kind, ns, { labelSelector: q.labelSelector ?? '', fieldSelector: q.fieldSelector ?? '' }).items as Obj[])) {
        res.write(`${JSON.stringify({ type: 'ADDED', object: { apiVersion: kind.apiVersion, kind: kind.kind, ...o } })}\n`);
      }
    }
    watches.add(w);
    const timeout = q.timeoutSeconds ? setTimeout(() => res.end(), Number(q.timeoutSeconds) * 1000) : undefined;
    const done = (): void => {
      if (timeout) clearTimeout(timeout);
      watches.delete(w);
    };
    req.on('close', done);
    res.on('close', done);
  }

  function route(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const query = Object.fromEntries(url.searchParams.entries());
    const rec: RecordedRequest = { method: req.method ?? 'GET', path: url.pathname, query };
    requests.push(rec);
    const failure = failures.find((f) => f.remaining > 0 && f.matches(rec));
    if (failure) {
      failure.remaining--;
      send(res, failure.status, status(failure.status, REASONS[failure.status] ?? 'Unknown', `injected failure ${failure.status}`));
      return;
    }
    const eventPath = /^\/api\/v1\/namespaces\/([^/]+)\/events$/.exec(url.pathname);
    if (rec.method === 'POST' && eventPath) {
      // Events are write-only here: the callback records them, the test reads `createdEvents`.
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const event = JSON.parse(body) as Obj;
        createdEvents.push({ ...event, metadata: { ...meta(event), namespace: eventPath[1], name: `event-${createdEvents.length + 1}` } });
        send(res, 201, { kind: 'Event', apiVersion: 'v1', ...createdEvents[createdEvents.length - 1] });
      });
      return;
    }
    const leasePath = /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/([^/]+)\/leases(?:\/([^/]+))?$/.exec(url.pathname);
    if (leasePath && (rec.method === 'POST' || rec.method === 'PUT')) {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const lease = { ...(JSON.parse(body) as Obj), kind: 'Lease' };
        const m = meta(lease);
        m.namespace = leasePath[1];
        const name = rec.method === 'PUT' ? leasePath[2] : strOf(m.name);
        const held = store.get(keyOf(kindOf('Lease'), leasePath[1] ?? '', name ?? ''));
        if (rec.method === 'POST' && held) return send(res, 409, status(409, 'AlreadyExists', `leases "${name}" already exists`));
        if (rec.method === 'PUT' && !held) return send(res, 404, status(404, 'NotFound', `leases "${name}" not found`));
        if (rec.method === 'PUT' && strOf(m.resourceVersion) !== strOf(held?.object.metadata?.resourceVersion)) {
          return send(res, 409, status(409, 'Conflict', `Operation cannot be fulfilled on leases "${name}": the object has been modified`));
        }
        send(res, rec.method === 'POST' ? 201 : 200, apply({ ...lease, metadata: { ...m, name } }));
      });
      return;
    }
    if (rec.method !== 'GET') {
      send(res, 405, status(405, 'MethodNotAllowed', `${rec.method} is not supported by the fake API server`));
      return;
    }
    for (const kind of KINDS) {
      if (!url.pathname.startsWith(`${kind.prefix}/`)) continue;
      const rest = url.pathname.slice(kind.prefix.length + 1).split('/');
      let ns: string | undefined;
      let name: string | undefined;
      if (rest.length === 1 && rest[0] === kind.plural) {
        // across namespaces
      } else if (rest[0] === 'namespaces' && rest[2] === kind.plural && (rest.length === 3 || rest.length === 4)) {
        ns = rest[1];
        name = rest[3];
      } else {
        continue;
      }
      if (name !== undefined) {
        const hit = store.get(keyOf(kind, ns ?? '', name));
        if (!hit) {
          send(res, 404, status(404, 'NotFound', `${kind.plural}.${kind.apiVersion.split('/')[0]} "${name}" not found`));
          return;
        }
        send(res, 200, { kind: kind.kind, ...hit.object });
        return;
      }
      if (query.watch === 'true' || query.watch === '1') {
        watch(kind, ns, query, req, res);
        return;
      }
      send(res, 200, list(kind, ns, query));
      return;
    }
    send(res, 404, status(404, 'NotFound', `the server could not find the requested resource (${url.pathname})`));
  }

  const server: Server = createServer(route);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;

  return {
    url,
    kubeConfig() {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'fake', server: url, skipTLSVerify: true }],
        users: [{ name: 'fake-user' }],
        contexts: [{ name: 'fake', cluster: 'fake', user: 'fake-user', namespace: 'kfp-notify' }],
        currentContext: 'fake',
      });
      return kc;
    },
    apply,
    remove,
    get(kindName, ns, name) {
      const hit = store.get(keyOf(kindOf(kindName), ns, name));
      return hit ? structuredClone(hit.object) : undefined;
    },
    dropWatches() {
      for (const w of watches) w.res.socket?.destroy();
      watches.clear();
    },
    endWatches() {
      for (const w of watches) w.res.end();
      watches.clear();
    },
    expireHistory() {
      history = [];
      oldestWatchable = rv;
    },
    failNext(count, code, matches = () => true) {
      failures.push({ remaining: count, status: code, matches });
    },
    requests,
    createdEvents,
    openWatches: () => watches.size,
    async close() {
      for (const w of watches) w.res.destroy();
      watches.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
