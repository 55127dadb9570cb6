import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOG_LEVELS } from '../cli/io.js';
import { runCli, runCliInProcess } from './helpers/cli.js';
import { cleanups } from './helpers/cleanups.js';
import { makeCert } from './helpers/tls.js';

/**
 * What a user reads when something is off: one wording per kind of mistake in every command, the
 * flag named as typed, exit 1 for the machine's problems and 2 for bad input, and help texts that
 * match what the parsers accept and what the docs say.
 */

const COMMANDS = ['inject', 'webhook', 'callback', 'serve', 'demo', 'dlq', 'subscriber'] as const;
const EXAMPLE = new URL('../examples/workflows/pipeline_with_exit_handler.yaml', import.meta.url).pathname;
const ROOT = new URL('..', import.meta.url).pathname;

const scratch = cleanups('kfp-notify-cli-messages-');
afterAll(() => scratch.run());

const inProcess = (args: string[]) => runCliInProcess(args, { KFP_NOTIFY_DATA_DIR: scratch.tempDir() });

async function help(command: string): Promise<string> {
  const r = await inProcess([command, '--help']);
  expect(r.code).toBe(0);
  return r.stdout;
}

/** The long flags an option line of a help text names (`  -f, --file F   …`, `  --port N   …`). */
function helpFlags(text: string): Set<string> {
  const flags = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^\s+(?:-\w,?\s+)?(--[a-z][a-z-]*)/.exec(line);
    if (m?.[1]) flags.add(m[1]);
  }
  return flags;
}

/** The long flags of a docs flag table: the rows from `heading` to the next heading. */
function docsFlags(file: string, heading: string): Set<string> {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const start = text.indexOf(`\n${heading}\n`);
  expect(start, `${file} has "${heading}"`).toBeGreaterThan(-1);
  const rest = text.slice(start + heading.length + 2);
  const section = rest.slice(0, rest.search(/\n#{2,3} /) + 1 || undefined);
  const flags = new Set<string>();
  for (const line of section.split('\n').filter((l) => l.startsWith('| `-'))) {
    const cell = line.split(' | ')[0] ?? '';
    for (const m of cell.matchAll(/--[a-z][a-z-]*/g)) flags.add(m[0]);
  }
  return flags;
}

describe('an unwritable data dir: one line naming the path, exit 1, in every command that writes one', () => {
  let cert: { cert: string; key: string };
  let badDir = '';
  beforeAll(async () => {
    const dir = scratch.tempDir();
    // A path under a regular file cannot be created, even by root (the tests may run as root, where
    // a mode-0500 directory would still be writable).
    writeFileSync(join(dir, 'a-file'), '');
    badDir = join(dir, 'a-file', 'data');
    const pair = await makeCert();
    cert = { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') };
    writeFileSync(cert.cert, pair.cert);
    writeFileSync(cert.key, pair.key);
  });

  it.each([
    ['serve', () => ['serve', '--callback-port', '0', '--webhook-port', '0']],
    ['callback', () => ['callback', '--no-cluster', '--port', '0']],
    ['demo', () => ['demo']],
    ['inject', () => ['inject', '-f', EXAMPLE]],
    ['webhook', () => ['webhook', '--port', '0', '--tls-cert', cert.cert, '--tls-key', cert.key]],
  ])('%s', async (command, args) => {
    const r = await runCli([...args(), '--data-dir', badDir]);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toContain('    at ');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^kfp-notify ${command}: (hook key: )?data dir ${badDir} is not writable: a parent is not a directory \\(ENOTDIR\\)$`));
  });
});

describe('flags', () => {
  it.each(COMMANDS)('%s: an unknown flag is named in one wording, followed by the usage, exit 2', async (command) => {
    const r = await inProcess([command, ...(command === 'dlq' ? ['list'] : []), '--bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^kfp-notify ${command}: unknown option --bogus\\n\\nUsage: kfp-notify ${command}`));
    expect(r.stderr).not.toContain('positional');
  });

  it('serve names the port flag the user typed', async () => {
    for (const flag of ['--callback-port', '--webhook-port']) {
      const r = await inProcess(['serve', flag, 'abc']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`kfp-notify serve: ${flag} must be a whole number from 0 to 65535, got "abc"`);
    }
  });

  it('a flag without its value says so', async () => {
    const r = await inProcess(['callback', '--port']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('kfp-notify callback: --port needs a value');
  });

  it('demo --fail naming no task exits 2 and lists the tasks it could fail', async () => {
    // As a process: the default workflow is found relative to the compiled dist/.
    const r = await runCli(['demo', '--fail', 'nosuchstep']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--fail nosuchstep: no such task in the workflow; its tasks: ');
    expect(r.stderr).toContain('fail-op');
    expect(r.stderr).toContain('print-op');
  });

  it('demo -f on a binary file, or on YAML that is no Workflow, exits 2', async () => {
    const dir = scratch.tempDir();
    const binary = join(dir, 'binary.dat');
    writeFileSync(binary, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff, 0xfe, 0x01]));
    const notWorkflow = join(dir, 'cm.yaml');
    writeFileSync(notWorkflow, 'apiVersion: v1\nkind: ConfigMap\n');
    const bin = await inProcess(['demo', '-f', binary]);
    expect(bin.code).toBe(2);
    expect(bin.stderr).toContain(`-f ${binary}: not a text file`);
    const cm = await inProcess(['demo', '-f', notWorkflow]);
    expect(cm.code).toBe(2);
    expect(cm.stderr).toContain('is not an Argo Workflow');
    const missing = await inProcess(['demo', '-f', join(dir, 'nope.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read');
  });
});

describe('help texts agree with the parsers and the docs', () => {
  it.each(COMMANDS)('%s: every flag its --help lists is one the parser knows', async (command) => {
    const flags = helpFlags(await help(command));
    expect(flags.size).toBeGreaterThan(1);
    for (const flag of flags) {
      const r = await inProcess([command, '--help', flag]);
      expect(r.stderr, `${command} ${flag}`).not.toContain('unknown option');
    }
  });

  it.each([
    ['callback', 'docs/callback.md', '## Running it'],
    ['webhook', 'docs/webhook.md', '### Flags'],
    ['inject', 'docs/injector.md', '## `kfp-notify inject`'],
  ])('%s: the flags of --help are the flags of its table in %s', async (command, file, heading) => {
    const inHelp = helpFlags(await help(command));
    inHelp.delete('--help');
    expect([...docsFlags(file, heading)].sort()).toEqual([...inHelp].sort());
  });

  it.each(['dlq', 'subscriber'])('%s: every flag of its --help is documented in docs/callback.md', async (command) => {
    const doc = readFileSync(join(ROOT, 'docs/callback.md'), 'utf8');
    const inHelp = [...helpFlags(await help(command))].filter((f) => f !== '--help');
    expect(inHelp.filter((f) => !doc.includes(`\`${f}`))).toEqual([]);
  });

  it.each(['callback', 'serve', 'webhook'])('%s: --log-level lists exactly the levels it accepts', async (command) => {
    const line = (await help(command)).split('\n').find((l) => l.includes('--log-level')) ?? '';
    const listed = LOG_LEVELS.filter((level) => new RegExp(`\\b${level}\\b`).test(line));
    expect(listed).toEqual([...LOG_LEVELS]);
    const r = await inProcess([command, ...(command === 'webhook' ? ['--port', '0'] : []), '--log-level', 'loud']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--log-level must be one of ${LOG_LEVELS.slice(0, -1).join(', ')} or silent, got "loud"`);
  });

  it('the docs list the same log levels', () => {
    for (const file of ['docs/callback.md', 'docs/webhook.md']) {
      const row = readFileSync(join(ROOT, file), 'utf8').split('\n').find((l) => l.startsWith('| `--log-level')) ?? '';
      for (const level of LOG_LEVELS) expect(row, `${file}: ${level}`).toContain(`\`${level}\``);
    }
  });
});
