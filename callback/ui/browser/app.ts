/**
 * The dashboard page's script. Renders only through text nodes (it never parses markup): every event field
 * is attacker-influenced (a step name can hold markup), and this way none of it can become markup.
 * Views (by the URL's hash): #/events?..., #/subscribers, #/delivery/<id>. The current view refreshes
 * itself every REFRESH_MS while the tab is visible.
 */

// The shapes of the JSON the page reads. This script is its own program (DOM types, rootDir here, no
// Node), so it cannot import the server's types; callback/store/types.ts is where they come from.
interface DeliveryView {
  id: number;
  eventId: string;
  subscriber: string;
  state: 'pending' | 'delivered' | 'dead';
  attempts: number;
  dueAt: number;
  lastStatus?: number;
  lastError?: string;
  updatedAt: number;
}
type EventFields = Record<string, string>;
interface EventSummary {
  seq: number;
  acceptedAt: number;
  event: EventFields;
  deliveries: DeliveryView[];
}
interface AttemptLog {
  id: number;
  startedAt: number;
  durationMs: number;
  outcome: string;
  status?: number;
  error?: string;
  nextAt?: number;
  request?: { url: string; headers: Record<string, string>; body: string };
}
interface WindowStats {
  delivered: number;
  failed: number;
  dead: number;
  p50Ms?: number;
  p95Ms?: number;
}
interface SubscriberRow {
  name: string;
  configured: boolean;
  type: string | null;
  endpoint: string | null;
  disabled: { since: string; reason: string } | null;
  stats: { pending: number; hour: WindowStats; day: WindowStats; lastError?: { at: number; status?: number; error: string } };
}

const REFRESH_MS = 5000;
const SEARCH_FIELDS = [
  ['runId', 'Run id'],
  ['pipeline', 'Pipeline'],
  ['namespace', 'Namespace'],
] as const;

let csrf = '';
/** The EventType values, from the server (one list, in callback/types.ts). */
let eventTypes: string[] = [];

type Child = Node | string | number | null | undefined | false;

/** An element with attributes and children; strings become text nodes. */
function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(typeof c === 'number' ? String(c) : c);
  return el;
}

const byId = (id: string): HTMLElement => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el;
};

function status(text: string, error = false): void {
  const el = byId('status');
  el.textContent = text;
  el.className = error ? 'error' : '';
}

const time = (ms: number | undefined): string => (ms === undefined ? '' : new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z'));
const ms = (v: number | undefined): string => (v === undefined ? '–' : `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`);

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(path, { credentials: 'same-origin', ...init, headers: { ...(init.headers ?? {}), ...(init.method === 'POST' ? { 'x-csrf-token': csrf } : {}) } });
  const body = (await res.json().catch(() => ({}))) as { error?: string };
  if (res.status === 401) {
    location.assign('/ui/');
    throw new HttpError(401, 'logged out');
  }
  if (!res.ok) throw new HttpError(res.status, body.error ?? `HTTP ${res.status}`);
  return body as T;
}

/** A confirmed POST action; reports its result in the status line and redraws the view. */
async function act(question: string, path: string, done: (r: Record<string, unknown>) => string): Promise<void> {
  if (!window.confirm(question)) return;
  try {
    const r = await api<Record<string, unknown>>(path, { method: 'POST' });
    status(done(r));
    await route();
  } catch (err) {
    status(err instanceof Error ? err.message : String(err), true);
  }
}

function table(headings: string[], rows: HTMLTableRowElement[], empty: string): HTMLElement {
  if (rows.length === 0) return h('p', { class: 'muted' }, empty);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'cards' }, h('thead', {}, h('tr', {}, ...headings.map((t) => h('th', {}, t)))), h('tbody', {}, ...rows)));
}

/** A table row whose cells carry their heading (shown as a label on a narrow screen). */
function row(headings: string[], cells: Child[][], attrs: Record<string, string> = {}): HTMLTableRowElement {
  return h('tr', attrs, ...cells.map((c, i) => h('td', { 'data-label': headings[i] ?? '' }, ...c)));
}

function deliveryBadge(d: DeliveryView): HTMLElement {
  return h('a', { class: `badge ${d.state}`, href: `#/delivery/${d.id}`, title: d.lastError ?? d.state }, `${d.subscriber}: ${d.state}${d.attempts > 0 ? ` (${d.attempts})` : ''}`);
}

// --- Events ---

function searchParams(): URLSearchParams {
  const q = location.hash.indexOf('?');
  return new URLSearchParams(q < 0 ? '' : location.hash.slice(q + 1));
}

function searchForm(params: URLSearchParams): HTMLFormElement {
  const form = h('form', { class: 'search', id: 'search' });
  for (const [name, label] of SEARCH_FIELDS) form.append(h('label', {}, label, h('input', { name, value: params.get(name) ?? '', autocomplete: 'off' })));
  const select = h('select', { name: 'eventType' }, h('option', { value: '' }, 'any'));
  for (const t of eventTypes) {
    const o = h('option', { value: t }, t);
    if (params.get('eventType') === t) o.selected = true;
    select.append(o);
  }
  form.append(h('label', {}, 'EventType', select));
  for (const [name, label] of [['from', 'From (UTC)'], ['to', 'To (UTC)']] as const) {
    const v = params.get(name);
    form.append(h('label', {}, label, h('input', { name, type: 'datetime-local', value: v ? new Date(Number(v)).toISOString().slice(0, 16) : '' })));
  }
  form.append(h('button', { type: 'submit', class: 'action' }, 'Search'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const out = new URLSearchParams();
    for (const [k, v] of new FormData(form)) {
      if (typeof v !== 'string' || v === '') continue;
      out.set(k, k === 'from' || k === 'to' ? String(Date.parse(`${v}:00Z`)) : v);
    }
    location.hash = `#/events?${out}`;
  });
  return form;
}

async function eventsView(view: HTMLElement): Promise<void> {
  const params = searchParams();
  const page = await api<{ events: EventSummary[]; next: number | null }>(`/ui/api/events?${params}`);
  const headings = ['Accepted', 'EventType', 'Run', 'Pipeline', 'Namespace', 'Step', 'Deliveries'];
  const rows = page.events.map((e) =>
    row(
      headings,
      [
        [time(e.acceptedAt)],
        [h('span', { class: /Failed|Error/.test(e.event.EventType ?? '') ? 'bad' : '' }, e.event.EventType ?? '')],
        [h('div', {}, e.event.RunName ?? ''), h('code', { class: 'muted' }, e.event.KfpRunId ?? '')],
        [e.event.PipelineName ?? ''],
        [e.event.Namespace ?? ''],
        [e.event.NodeName ?? ''],
        e.deliveries.length > 0 ? e.deliveries.map(deliveryBadge) : [h('span', { class: 'muted' }, 'routed to nobody')],
      ],
      { 'data-event-id': e.event.EventId ?? '' },
    ),
  );
  const pager = h('div', { class: 'pager' });
  if (params.has('before')) {
    const first = new URLSearchParams(params);
    first.delete('before');
    pager.append(h('a', { href: `#/events?${first}` }, 'Newest'));
  }
  if (page.next !== null) {
    const older = new URLSearchParams(params);
    older.set('before', String(page.next));
    pager.append(h('a', { href: `#/events?${older}`, id: 'older' }, 'Older'));
  }
  view.replaceChildren(h('h2', {}, 'Events, latest first'), searchForm(params), table(headings, rows, 'No events match.'), pager);
}

// --- Subscribers ---

function windowCells(w: WindowStats): Child[] {
  return [h('span', { class: 'ok' }, `${w.delivered} ok`), ' / ', h('span', { class: w.failed ? 'bad' : 'muted' }, `${w.failed} failed`), ' / ', h('span', { class: w.dead ? 'bad' : 'muted' }, `${w.dead} dead`)];
}

async function subscribersView(view: HTMLElement): Promise<void> {
  const { subscribers } = await api<{ subscribers: SubscriberRow[] }>('/ui/api/subscribers');
  const headings = ['Subscriber', 'Pending', 'Last hour', 'Last day', 'Latency p50 / p95 (day)', 'Last error', 'State', 'Actions'];
  const rows = subscribers.map((s) => {
    const actions: Child[] = [
      h('button', { type: 'button', class: 'action', 'data-action': 'replay-all' }, 'Replay dead letters'),
    ];
    if (s.disabled) actions.push(' ', h('button', { type: 'button', class: 'action', 'data-action': 'enable' }, 'Re-enable'));
    const r = row(
      headings,
      [
        [h('strong', {}, s.name), h('div', { class: 'muted' }, [s.type, s.endpoint].filter(Boolean).join(' '), s.configured ? '' : ' (not configured)')],
        [String(s.stats.pending)],
        windowCells(s.stats.hour),
        windowCells(s.stats.day),
        [`${ms(s.stats.day.p50Ms)} / ${ms(s.stats.day.p95Ms)}`],
        s.stats.lastError ? [h('span', { class: 'bad' }, s.stats.lastError.error), h('div', { class: 'muted' }, time(s.stats.lastError.at))] : [h('span', { class: 'muted' }, 'none')],
        s.disabled ? [h('span', { class: 'bad' }, 'disabled'), h('div', { class: 'muted' }, `${s.disabled.reason} since ${s.disabled.since}`)] : [h('span', { class: 'ok' }, 'enabled')],
        actions,
      ],
      { 'data-subscriber': s.name },
    );
    r.querySelector('[data-action="replay-all"]')?.addEventListener('click', () =>
      act(`Replay every dead letter of ${s.name}?`, `/ui/api/subscribers/${encodeURIComponent(s.name)}/replay`, (x) => `${String(x.replayed)} dead letters of ${s.name} replayed`),
    );
    r.querySelector('[data-action="enable"]')?.addEventListener('click', () =>
      act(`Re-enable ${s.name}? Its dead letters stay dead until replayed.`, `/ui/api/subscribers/${encodeURIComponent(s.name)}/enable`, () => `${s.name} re-enabled`),
    );
    return r;
  });
  view.replaceChildren(h('h2', {}, 'Subscribers'), table(headings, rows, 'No subscribers.'));
}

// --- A delivery ---

async function deliveryView(view: HTMLElement, id: string): Promise<void> {
  const { delivery: d, attempts } = await api<{ delivery: DeliveryView & { event: EventFields }; attempts: AttemptLog[] }>(`/ui/api/deliveries/${encodeURIComponent(id)}`);
  const facts = h(
    'dl',
    {},
    h('dt', {}, 'Subscriber'),
    h('dd', {}, d.subscriber),
    h('dt', {}, 'State'),
    h('dd', { id: 'delivery-state', class: d.state }, d.state),
    h('dt', {}, 'Attempts'),
    h('dd', {}, String(d.attempts)),
    h('dt', {}, d.state === 'pending' ? 'Next attempt' : 'Since'),
    h('dd', {}, time(d.state === 'pending' ? d.dueAt : d.updatedAt)),
    h('dt', {}, 'Event'),
    h('dd', {}, `${d.event.EventType ?? ''} ${d.event.RunName ?? ''} ${d.event.NodeName ?? ''}`, h('div', {}, h('code', {}, d.eventId))),
  );
  const parts: Child[] = [h('h2', {}, `Delivery ${d.id}`), facts];
  if (d.state === 'dead') {
    const replay = h('button', { type: 'button', class: 'action', id: 'replay' }, 'Replay this dead letter');
    replay.addEventListener('click', () => act(`Send event ${d.eventId} to ${d.subscriber} again?`, `/ui/api/dead-letters/${d.id}/replay`, () => `delivery ${d.id} replayed`));
    parts.push(replay);
  }
  const headings = ['Started', 'Outcome', 'Status or error', 'Duration', 'Next attempt'];
  const rows = attempts.map((a) =>
    row(headings, [
      [time(a.startedAt)],
      [h('span', { class: a.outcome === 'delivered' ? 'ok' : a.outcome === 'retry' ? 'retry' : 'bad' }, a.outcome)],
      [a.status !== undefined ? `HTTP ${a.status}` : '', a.error && a.error !== `HTTP ${a.status}` ? h('div', { class: 'bad' }, a.error) : ''],
      [ms(a.durationMs)],
      [time(a.nextAt)],
    ]),
  );
  parts.push(h('h2', {}, 'Attempts'), table(headings, rows, 'No attempt logged yet.'));
  for (const a of attempts) {
    if (!a.request) continue;
    const headers = Object.entries(a.request.headers).map(([k, v]) => `${k}: ${v}`).join('\n');
    parts.push(
      h(
        'details',
        { class: 'request' },
        h('summary', {}, `Request of attempt at ${time(a.startedAt)} to ${a.request.url}`),
        h('h3', {}, 'Headers (secrets masked)'),
        h('pre', { class: 'headers' }, headers),
        h('h3', {}, 'Body'),
        h('pre', { class: 'body' }, a.request.body),
      ),
    );
  }
  const last = parts.at(-1);
  if (last instanceof HTMLDetailsElement) last.open = true;
  parts.push(h('p', {}, h('a', { href: `#/events?runId=${encodeURIComponent(d.event.KfpRunId ?? '')}` }, 'Other events of this run')));
  view.replaceChildren(...parts.filter((p): p is Node => p instanceof Node));
}

// --- Routing and refresh ---

async function route(): Promise<void> {
  const view = byId('view');
  const hash = location.hash || '#/events';
  const path = hash.split('?')[0] ?? '';
  for (const [id, prefix] of [['nav-events', '#/events'], ['nav-subscribers', '#/subscribers']] as const) byId(id).classList.toggle('current', path === prefix);
  try {
    const delivery = /^#\/delivery\/(\d+)$/.exec(path);
    if (delivery?.[1]) await deliveryView(view, delivery[1]);
    else if (path === '#/subscribers') await subscribersView(view);
    else await eventsView(view);
    document.body.dataset.loadedAt = String(Date.now());
  } catch (err) {
    status(err instanceof Error ? err.message : String(err), true);
  }
}

/** Redraws the view unless the user is typing in it or reading an opened request. */
function refresh(): void {
  const active = document.activeElement;
  const busy = active instanceof HTMLInputElement || active instanceof HTMLSelectElement;
  if (!document.hidden && !busy) void route();
}

async function start(): Promise<void> {
  const session = await api<{ operator: string; csrf: string; eventTypes: string[] }>('/ui/api/session');
  csrf = session.csrf;
  eventTypes = session.eventTypes;
  byId('who').textContent = `logged in as ${session.operator}`;
  byId('logout').addEventListener('click', async () => {
    await api('/ui/logout', { method: 'POST' }).catch(() => undefined);
    location.assign('/ui/');
  });
  window.addEventListener('hashchange', () => {
    status('');
    void route();
  });
  await route();
  window.setInterval(refresh, REFRESH_MS);
}

void start().catch((err: unknown) => status(err instanceof Error ? err.message : String(err), true));
export {};
