import { request } from 'undici';
import { resolveDataDir } from '../common/data-dir.js';
import { loadAdminToken } from '../common/data-dir.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, type CliIo, type Command, parseOrExit, strictParse } from './io.js';
import { errorMessage } from '../common/error-message.js';

const USAGE = `Usage: kfp-notify dlq list|replay [options]

Lists or replays dead-lettered deliveries through a running callback's admin API.

  kfp-notify dlq list [--subscriber S]                  what failed for good, oldest first
  kfp-notify dlq replay --id ID [--id ID...]            deliver these again (fresh attempt count)
  kfp-notify dlq replay --subscriber S | --all

Options:
  --url U               the callback (default http://127.0.0.1:8080)
  --subscriber S        only this subscriber's dead letters
  --id ID               a dead-letter id (repeatable; replay only)
  --all                 every dead letter (replay only)
  --data-dir D          where the admin token is (default ./.kfp-notify or $KFP_NOTIFY_DATA_DIR)
  --admin-token-file F  the admin token file (default <data dir>/admin-token)
  -o, --output F        table (default) or json
  -h, --help            show this help
`;

interface DlqArgs {
  action: 'list' | 'replay';
  url: string;
  subscriber?: string;
  ids: number[];
  all: boolean;
  dataDir: string;
  adminTokenFile?: string;
  output: 'table' | 'json';
}

interface DeadLetterView {
  id: number;
  subscriber: string;
  eventId: string;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  deadAt: string;
  event: { EventType?: string; KfpRunId?: string; WorkflowName?: string; NodeName?: string };
}

function parse(args: string[], env: NodeJS.ProcessEnv): DlqArgs | 'help' {
  const parsed = strictParse({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      url: { type: 'string', default: 'http://127.0.0.1:8080' },
      subscriber: { type: 'string' },
      id: { type: 'string', multiple: true, default: [] },
      all: { type: 'boolean', default: false },
      'data-dir': { type: 'string' },
      'admin-token-file': { type: 'string' },
      output: { type: 'string', short: 'o', default: 'table' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const v = parsed.values;
  if (v.help) return 'help';
  const [action, ...extra] = parsed.positionals;
  if (action !== 'list' && action !== 'replay') throw new UsageError(action ? `unknown action "${action}" (use list or replay)` : 'give an action: list or replay');
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  if (v.output !== 'table' && v.output !== 'json') throw new UsageError(`--output must be table or json (got ${v.output})`);
  try {
    const u = new URL(v.url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
  } catch {
    throw new UsageError(`--url must be an http(s) URL (got ${v.url})`);
  }
  const ids = v.id.map((s) => {
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--id must be a positive integer (got ${s})`);
    return n;
  });
  if (action === 'list' && (ids.length > 0 || v.all)) throw new UsageError('--id and --all apply to replay only');
  if (action === 'replay') {
    const selectors = [ids.length > 0, v.subscriber !== undefined, v.all].filter(Boolean).length;
    if (selectors !== 1) throw new UsageError('replay needs exactly one of --id, --subscriber, --all');
  }
  return {
    action,
    url: v.url.replace(/\/+$/, ''),
    ...(v.subscriber !== undefined ? { subscriber: v.subscriber } : {}),
    ids,
    all: v.all,
    dataDir: resolveDataDir(v['data-dir'] ?? env.KFP_NOTIFY_DATA_DIR),
    ...(v['admin-token-file'] ? { adminTokenFile: v['admin-token-file'] } : {}),
    output: v.output,
  };
}

class ApiError extends Error {}

async function call(a: DlqArgs, token: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  let res;
  try {
    res = await request(`${a.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    throw new ApiError(`cannot reach the callback at ${a.url}: ${errorMessage(err)}`);
  }
  const text = await res.body.text();
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    data = undefined;
  }
  if (res.statusCode >= 400) {
    const reason = (data as { error?: unknown } | undefined)?.error;
    throw new ApiError(`${method} ${path}: HTTP ${res.statusCode}${typeof reason === 'string' ? `: ${reason}` : ''}`);
  }
  if (data === undefined) throw new ApiError(`${method} ${path}: the answer is not JSON`);
  return data;
}

function table(rows: readonly DeadLetterView[]): string {
  const head = ['ID', 'SUBSCRIBER', 'EVENT', 'RUN', 'WORKFLOW', 'NODE', 'ATTEMPTS', 'LAST', 'DEAD AT'];
  const cells = rows.map((r) => [
    String(r.id),
    r.subscriber,
    r.event.EventType ?? '',
    r.event.KfpRunId ?? '',
    r.event.WorkflowName ?? '',
    r.event.NodeName || '-',
    String(r.attempts),
    (r.lastStatus !== null ? String(r.lastStatus) : r.lastError ?? '-').slice(0, 40),
    r.deadAt,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  return [head, ...cells].map((line) => line.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n') + '\n';
}

async function run(args: string[], io: CliIo): Promise<number> {
  const parsed = parseOrExit('dlq', USAGE, io, () => parse(args, io.env));
  if ('exit' in parsed) return parsed.exit;
  const a = parsed.flags;
  let token: string;
  try {
    token = loadAdminToken({ dataDir: a.dataDir, create: false, ...(a.adminTokenFile ? { file: a.adminTokenFile } : {}) });
  } catch (err) {
    io.stderr.write(`kfp-notify dlq: ${errorMessage(err)} (use --admin-token-file or --data-dir)\n`);
    return EXIT_USAGE;
  }
  try {
    if (a.action === 'list') {
      const q = a.subscriber !== undefined ? `?subscriber=${encodeURIComponent(a.subscriber)}` : '';
      const data = (await call(a, token, 'GET', `/v1/dead-letters${q}`)) as { deadLetters: DeadLetterView[] };
      io.stdout.write(a.output === 'json' ? `${JSON.stringify(data.deadLetters, null, 2)}\n` : data.deadLetters.length ? table(data.deadLetters) : 'no dead letters\n');
      return EXIT_OK;
    }
    const selector = a.ids.length > 0 ? { ids: a.ids } : a.subscriber !== undefined ? { subscriber: a.subscriber } : { all: true };
    const data = (await call(a, token, 'POST', '/v1/dead-letters/replay', selector)) as { replayed: number; ids: number[] };
    io.stdout.write(a.output === 'json' ? `${JSON.stringify(data)}\n` : `replayed ${data.replayed} dead letter${data.replayed === 1 ? '' : 's'}${data.ids.length ? `: ${data.ids.join(' ')}` : ''}\n`);
    return EXIT_OK;
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    io.stderr.write(`kfp-notify dlq: ${err.message}\n`);
    return EXIT_FAILURE;
  }
}

export const command: Command = {
  name: 'dlq',
  summary: 'list or replay dead-lettered deliveries',
  run,
};
