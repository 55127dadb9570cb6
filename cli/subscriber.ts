import { ADMIN_FLAGS_HELP, ADMIN_OPTIONS, adminCall, adminTarget, runAdminCommand, type AdminTarget } from './admin-client.js';
import { EXIT_OK, UsageError, type CliIo, type Command, strictParse, textTable } from './io.js';

const USAGE = `Usage: kfp-notify subscriber list|enable [NAME] [options]

The subscribers of a running callback, through its admin API.

  kfp-notify subscriber list            each subscriber, whether it is disabled (since, why) and its queue
  kfp-notify subscriber enable NAME     re-enable a subscriber the callback disabled (HTTP 410 Gone, or
                                        failing without a success for --disable-after); its dead letters
                                        stay dead: replay them with \`kfp-notify dlq replay --subscriber NAME\`

A name that is neither configured nor disabled exits 2.

Options:
${ADMIN_FLAGS_HELP}
  -o, --output F        table (default) or json
  -h, --help            show this help
`;

interface SubscriberArgs {
  action: 'list' | 'enable';
  name?: string;
  target: AdminTarget;
  output: 'table' | 'json';
}

interface SubscriberView {
  name: string;
  type?: string;
  configured: boolean;
  disabled: { since: string; reason: string } | null;
  queueDepth: number;
}

function parse(args: string[], env: NodeJS.ProcessEnv): SubscriberArgs | 'help' {
  const parsed = strictParse({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      ...ADMIN_OPTIONS,
      output: { type: 'string', short: 'o', default: 'table' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const v = parsed.values;
  if (v.help) return 'help';
  const [action, name, ...extra] = parsed.positionals;
  if (action !== 'list' && action !== 'enable') throw new UsageError(action ? `unknown action "${action}" (use list or enable)` : 'give an action: list or enable');
  if (action === 'enable' && !name) throw new UsageError('enable needs the subscriber NAME');
  const unexpected = action === 'list' ? name : extra[0];
  if (unexpected !== undefined) throw new UsageError(`unexpected argument "${unexpected}"`);
  if (v.output !== 'table' && v.output !== 'json') throw new UsageError(`--output must be table or json (got ${v.output})`);
  return { action, ...(name ? { name } : {}), target: adminTarget(v, env), output: v.output };
}

function table(rows: readonly SubscriberView[]): string {
  const head = ['NAME', 'TYPE', 'CONFIGURED', 'QUEUE', 'DISABLED SINCE', 'WHY'];
  const cells = rows.map((r) => [r.name, r.type ?? '-', r.configured ? 'yes' : 'no', String(r.queueDepth), r.disabled?.since ?? '-', r.disabled?.reason ?? '']);
  return textTable(head, cells);
}

function run(args: string[], io: CliIo): Promise<number> {
  return runAdminCommand('subscriber', USAGE, io, () => parse(args, io.env), async (a, token) => {
    if (a.action === 'list') {
      const data = (await adminCall(a.target, token, 'GET', '/v1/subscribers')) as { subscribers: SubscriberView[] };
      io.stdout.write(a.output === 'json' ? `${JSON.stringify(data.subscribers, null, 2)}\n` : table(data.subscribers));
      return EXIT_OK;
    }
    const name = a.name ?? '';
    const data = (await adminCall(a.target, token, 'POST', `/v1/subscribers/${encodeURIComponent(name)}/enable`)) as { wasDisabled: boolean };
    io.stdout.write(a.output === 'json' ? `${JSON.stringify(data)}\n` : data.wasDisabled ? `enabled ${name}\n` : `${name} was not disabled\n`);
    return EXIT_OK;
  });
}

export const command: Command = {
  name: 'subscriber',
  summary: 'list subscribers, or re-enable one the callback disabled',
  run,
};
