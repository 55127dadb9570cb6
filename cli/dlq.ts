import { durationMs } from '../callback/subscribers/duration.js';
import { ADMIN_FLAGS_HELP, ADMIN_OPTIONS, adminCall, adminTarget, runAdminCommand, type AdminTarget } from './admin-client.js';
import { EXIT_OK, EXIT_USAGE, UsageError, type CliIo, type Command, strictParse, textTable } from './io.js';

const USAGE = `Usage: kfp-notify dlq list|replay [options]

Lists or replays dead-lettered deliveries through a running callback's admin API.

  kfp-notify dlq list [--subscriber S] [--run ID] [--since T] [--until T]   what failed for good, oldest first
  kfp-notify dlq replay --id ID [--id ID...]            deliver these again (fresh attempt count)
  kfp-notify dlq replay --subscriber S | --all
  kfp-notify dlq replay [--subscriber S] [--run ID] [--since T] [--until T]

A name or id that does not exist exits 2. Re-enable a disabled subscriber with
\`kfp-notify subscriber enable NAME\`.

Options:
  --subscriber S        only this subscriber's dead letters
  --run ID              only the dead letters of this KFP run (the event's KfpRunId)
  --since T             only those dead since T: a duration ago (2h, 30m, 7d) or an ISO 8601 time
  --until T             only those dead before T (same forms)
  --id ID               a dead-letter id (repeatable; replay only)
  --all                 every dead letter (replay only)
${ADMIN_FLAGS_HELP}
  -o, --output F        table (default) or json
  -h, --help            show this help
`;

interface Filter {
  subscriber?: string;
  run?: string;
  since?: string;
  until?: string;
}

interface DlqArgs {
  action: 'list' | 'replay';
  target: AdminTarget;
  filter: Filter;
  ids: number[];
  all: boolean;
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

/** `2h` (that long ago) or an ISO 8601 time → an ISO time for the API. */
export function timeFlag(value: string, flag: string, now: number): string {
  const ago = durationMs(value, NaN);
  if (ago !== undefined && !Number.isNaN(ago)) return new Date(now - ago).toISOString();
  const at = /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(at)) throw new UsageError(`${flag} must be a duration ago (2h, 30m, 7d) or an ISO 8601 time, got "${value}"`);
  return new Date(at).toISOString();
}

function parse(args: string[], env: NodeJS.ProcessEnv): DlqArgs | 'help' {
  const parsed = strictParse({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      ...ADMIN_OPTIONS,
      subscriber: { type: 'string' },
      run: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      id: { type: 'string', multiple: true, default: [] },
      all: { type: 'boolean', default: false },
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
  const target = adminTarget(v, env);
  const ids = v.id.map((s) => {
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--id must be a positive integer (got ${s})`);
    return n;
  });
  const now = Date.now();
  const filter: Filter = {
    ...(v.subscriber !== undefined ? { subscriber: v.subscriber } : {}),
    ...(v.run !== undefined ? { run: v.run } : {}),
    ...(v.since !== undefined ? { since: timeFlag(v.since, '--since', now) } : {}),
    ...(v.until !== undefined ? { until: timeFlag(v.until, '--until', now) } : {}),
  };
  if (action === 'list' && (ids.length > 0 || v.all)) throw new UsageError('--id and --all apply to replay only');
  if (action === 'replay') {
    const selectors = [ids.length > 0, Object.keys(filter).length > 0, v.all].filter(Boolean).length;
    if (selectors !== 1) throw new UsageError('replay needs exactly one of --id, --all, or filters (--subscriber, --run, --since, --until)');
  }
  return { action, target, filter, ids, all: v.all, output: v.output };
}

/** The replay body: ids, all, a subscriber alone (as before filters existed), or a filter. */
function replaySelector(a: DlqArgs): unknown {
  if (a.ids.length > 0) return { ids: a.ids };
  if (a.all) return { all: true };
  const { subscriber, ...rest } = a.filter;
  return Object.keys(rest).length === 0 ? { subscriber } : { filter: a.filter };
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
  return textTable(head, cells);
}

function run(args: string[], io: CliIo): Promise<number> {
  return runAdminCommand('dlq', USAGE, io, () => parse(args, io.env), async (a, token) => {
    if (a.action === 'list') {
      const query = new URLSearchParams(Object.entries(a.filter)).toString();
      const data = (await adminCall(a.target, token, 'GET', `/v1/dead-letters${query ? `?${query}` : ''}`)) as { deadLetters: DeadLetterView[] };
      io.stdout.write(a.output === 'json' ? `${JSON.stringify(data.deadLetters, null, 2)}\n` : data.deadLetters.length ? table(data.deadLetters) : 'no dead letters\n');
      return EXIT_OK;
    }
    const data = (await adminCall(a.target, token, 'POST', '/v1/dead-letters/replay', replaySelector(a))) as { replayed: number; ids: number[]; notFound?: number[] };
    io.stdout.write(a.output === 'json' ? `${JSON.stringify(data)}\n` : `replayed ${data.replayed} dead letter${data.replayed === 1 ? '' : 's'}${data.ids.length ? `: ${data.ids.join(' ')}` : ''}\n`);
    const notFound = data.notFound ?? [];
    if (notFound.length > 0) {
      io.stderr.write(`kfp-notify dlq: no dead letter with id ${notFound.join(', ')}\n`);
      return EXIT_USAGE;
    }
    return EXIT_OK;
  });
}

export const command: Command = {
  name: 'dlq',
  summary: 'list or replay dead-lettered deliveries',
  run,
};
