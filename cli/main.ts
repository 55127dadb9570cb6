import { parseArgs } from 'node:util';
import { errorMessage } from '../common/error-message.js';
import { processIo, type CliIo, type Command, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './io.js';

// Commands load lazily: `inject` should not pay for Fastify or SQLite.
const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  inject: { summary: 'print a Workflow as the webhook would admit it (dry run)', load: async () => (await import('./inject.js')).command },
  webhook: { summary: 'run the mutating admission webhook (HTTPS)', load: async () => (await import('./webhook.js')).command },
  callback: { summary: 'run the callback service alone', load: async () => (await import('./callback.js')).command },
  serve: { summary: 'run webhook and callback on loopback, no cluster needed', load: async () => (await import('./serve.js')).command },
  demo: { summary: 'admit a real KFP workflow, play its hook calls, print the deliveries', load: async () => (await import('./demo.js')).command },
  dlq: { summary: 'list or replay dead-lettered deliveries', load: async () => (await import('./dlq.js')).command },
  subscriber: { summary: 'list subscribers, or re-enable one the callback disabled', load: async () => (await import('./subscriber.js')).command },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const lines = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`);
  return [
    'kfp-notify: tells the outside world what Kubeflow Pipelines runs are doing',
    '',
    'Usage: kfp-notify <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Run `kfp-notify <command> --help` for the options of one command.',
    '',
  ].join('\n');
}

export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(usage());
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (name === '--version') {
    const { values } = parseArgs({ args: [name], options: { version: { type: 'boolean' } } });
    if (values.version) io.stdout.write(`${process.env.npm_package_version ?? '0.1.0'}\n`);
    return EXIT_OK;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    io.stderr.write(`kfp-notify: unknown command "${name}"\n\n${usage()}`);
    return EXIT_USAGE;
  }
  const command = await entry.load();
  try {
    return await command.run(rest, io);
  } catch (err) {
    // Whatever a command did not handle ends as one line and exit 1, never a stack trace: an
    // unwritable data dir (a DataDirError, naming the path) the same way in every command.
    io.stderr.write(`kfp-notify ${name}: ${errorMessage(err)}\n`);
    return EXIT_FAILURE;
  }
}
