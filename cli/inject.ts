import { readFile } from 'node:fs/promises';
import { loadHookKeys, resolveDataDir } from '../common/data-dir.js';
import type { HookKey } from '../common/hook-token.js';
import { InputFormatError, parseDocuments, toYamlStream } from '../common/yaml-docs.js';
import { injectWorkflow, type InjectResult } from '../webhook/inject/index.js';
import {
  defaultInjectOptions,
  DEFAULT_ARGO_VERSION,
  DEFAULT_CALLBACK_URL,
  DEFAULT_SIZE_LIMIT_BYTES,
  STEP_HOOK_POLICIES,
  type InjectOptions,
  type StepHooks,
} from '../webhook/inject/options.js';
import type { Workflow } from '../common/kfp/workflow-types.js';
import { asCreatedByKfp } from './demo/kfp-api-server.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, readAll, UsageError, type CliIo, type Command, parseOrExit, strictParse } from './io.js';
import { errorMessage } from '../common/error-message.js';

const USAGE = `Usage: kfp-notify inject -f FILE|- [options]

Prints the Workflow(s) in FILE as the admission webhook would admit them: with the notification hooks
added (like istioctl kube-inject). Objects that are not KFP Workflows are printed unchanged, with the
reason on stderr.

Options:
  -f, --file FILE          YAML or JSON, one or more documents; - reads stdin (required)
  -o, --output FORMAT      yaml (default) | json | patch (one JSON Patch per document, one per line)
      --argo-version X     the cluster's Argo version (default ${DEFAULT_ARGO_VERSION}); decides which hooks are possible
      --mode MODE          container (default: a curl pod per call) | http (Argo HTTP template, Argo >= 3.5.11)
      --step-hooks P       all | failed | none: which step outcomes get an exit hook (default: failed on
                           Argo >= 3.4, none below; the status watcher reports the rest)
      --callback-url URL   callback base URL (default ${DEFAULT_CALLBACK_URL})
      --namespace NS       namespace the hook token is minted for (default: metadata.namespace, else "default")
      --data-dir DIR       where the hook key lives (default ./.kfp-notify or $KFP_NOTIFY_DATA_DIR)
      --hook-key-file F    sign hook tokens with the first key in F instead of <data dir>/hook-key
      --size-limit BYTES   leave a Workflow alone if injecting would make it larger (default ${DEFAULT_SIZE_LIMIT_BYTES})
      --kfp-run-id ID      FILE is compiler output (kfp dsl compile): first add what the KFP API server adds
                           when it creates a run with this id (pipeline/runid label, run name, pod label,
                           {{workflow.uid}} replaced), so the preview matches what the webhook will see
  -h, --help               show this help
`;

const OUTPUTS = ['yaml', 'json', 'patch'] as const;
type Output = (typeof OUTPUTS)[number];

interface Flags {
  file: string;
  kfpRunId: string | undefined;
  output: Output;
  dataDir: string | undefined;
  hookKeyFile: string | undefined;
  settings: Partial<Omit<InjectOptions, 'hookKey'>>;
}

function parseFlags(args: string[]): Flags | 'help' {
  const { values } = strictParse({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      file: { type: 'string', short: 'f' },
      output: { type: 'string', short: 'o', default: 'yaml' },
      'argo-version': { type: 'string' },
      mode: { type: 'string' },
      'step-hooks': { type: 'string' },
      'callback-url': { type: 'string' },
      namespace: { type: 'string' },
      'data-dir': { type: 'string' },
      'hook-key-file': { type: 'string' },
      'size-limit': { type: 'string' },
      'kfp-run-id': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  if (values.file === undefined) throw new UsageError('missing -f FILE (use -f - to read stdin)');
  const output = values.output;
  if (!(OUTPUTS as readonly string[]).includes(output)) throw new UsageError(`-o must be one of ${OUTPUTS.join(', ')}, got ${JSON.stringify(output)}`);
  const mode = values.mode;
  if (mode !== undefined && mode !== 'container' && mode !== 'http') throw new UsageError(`--mode must be container or http, got ${JSON.stringify(mode)}`);
  const stepHooks = values['step-hooks'];
  if (stepHooks !== undefined && !(STEP_HOOK_POLICIES as readonly string[]).includes(stepHooks)) {
    throw new UsageError(`--step-hooks must be one of ${STEP_HOOK_POLICIES.join(', ')}, got ${JSON.stringify(stepHooks)}`);
  }
  const sizeLimit = values['size-limit'];
  if (sizeLimit !== undefined && !/^\d+$/.test(sizeLimit)) throw new UsageError(`--size-limit must be a whole number of bytes, got ${JSON.stringify(sizeLimit)}`);
  const kfpRunId = values['kfp-run-id'];
  if (kfpRunId !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(kfpRunId)) {
    throw new UsageError(`--kfp-run-id must be a label value (letters, digits, '-', '_', '.'; at most 63), got ${JSON.stringify(kfpRunId)}`);
  }
  return {
    file: values.file,
    kfpRunId,
    output: output as Output,
    dataDir: values['data-dir'],
    hookKeyFile: values['hook-key-file'],
    settings: {
      ...(values['argo-version'] !== undefined ? { argoVersion: values['argo-version'] } : {}),
      ...(mode !== undefined ? { mode } : {}),
      ...(stepHooks !== undefined ? { stepHooks: stepHooks as StepHooks } : {}),
      ...(values['callback-url'] !== undefined ? { callbackUrl: values['callback-url'] } : {}),
      ...(values.namespace !== undefined ? { namespace: values.namespace } : {}),
      ...(sizeLimit !== undefined ? { sizeLimitBytes: Number(sizeLimit) } : {}),
    },
  };
}

/** The signing key, from --hook-key-file or the data dir (created there on first use, like `serve` does). */
function signingKey(flags: Flags, io: CliIo): HookKey | { code: number; message: string } {
  const dataDir = resolveDataDir(flags.dataDir ?? io.env.KFP_NOTIFY_DATA_DIR);
  try {
    const [first] = loadHookKeys({ keyFile: flags.hookKeyFile, dataDir });
    if (first) return first;
    return { code: EXIT_USAGE, message: 'no hook key found' };
  } catch (err) {
    const message = `hook key: ${errorMessage(err)}`;
    // A key file the user named is input; a data dir we could not write to is the machine's problem.
    return { code: flags.hookKeyFile !== undefined ? EXIT_USAGE : EXIT_FAILURE, message };
  }
}

/** A compiled Workflow as the KFP API server would create it; anything else unchanged. */
function asKfpRun(doc: unknown, runId: string, namespace: string | undefined): unknown {
  const wf = doc as Workflow;
  if (wf.apiVersion !== 'argoproj.io/v1alpha1' || wf.kind !== 'Workflow') return doc;
  const name = wf.metadata?.name ?? wf.metadata?.generateName ?? 'pipeline';
  return asCreatedByKfp(wf, { runId, runName: `preview of ${name.replace(/-$/, '')}`, namespace: namespace ?? wf.metadata?.namespace ?? 'default' });
}

function describeDoc(doc: unknown, i: number): string {
  const d = doc as { kind?: unknown; metadata?: { name?: unknown; generateName?: unknown } };
  const name = d.metadata?.name ?? d.metadata?.generateName;
  return `document ${i + 1}${typeof d.kind === 'string' ? ` (${d.kind}${typeof name === 'string' ? ` ${name}` : ''})` : ''}`;
}

function render(results: readonly InjectResult[], output: Output): string {
  const objects = results.map((r) => r.workflow);
  switch (output) {
    case 'yaml':
      return toYamlStream(objects);
    case 'json': {
      // Several objects print as a kubectl-style List, which `kubectl apply -f` accepts.
      const value = objects.length === 1 ? objects[0] : { apiVersion: 'v1', kind: 'List', items: objects };
      return `${JSON.stringify(value, null, 2)}\n`;
    }
    case 'patch':
      return results.map((r) => `${JSON.stringify(r.patch)}\n`).join('');
  }
}

async function run(args: string[], io: CliIo): Promise<number> {
  const parsed = parseOrExit('inject', USAGE, io, () => parseFlags(args));
  if ('exit' in parsed) return parsed.exit;
  const flags = parsed.flags;

  const key = signingKey(flags, io);
  if ('code' in key) {
    io.stderr.write(`kfp-notify inject: ${key.message}\n`);
    return key.code;
  }
  let opts: InjectOptions;
  try {
    opts = defaultInjectOptions({ ...flags.settings, hookKey: key });
  } catch (err) {
    io.stderr.write(`kfp-notify inject: ${errorMessage(err)}\n\n${USAGE}`);
    return EXIT_USAGE;
  }

  const source = flags.file === '-' ? 'stdin' : flags.file;
  let docs: unknown[];
  try {
    const text = flags.file === '-' ? await readAll(io.stdin) : await readFile(flags.file, 'utf8');
    docs = parseDocuments(text, source);
  } catch (err) {
    const message = err instanceof InputFormatError ? err.message : `${source}: cannot read: ${errorMessage(err)}`;
    io.stderr.write(`kfp-notify inject: ${message}\n`);
    return EXIT_USAGE;
  }

  const asSubmitted = flags.kfpRunId === undefined ? docs : docs.map((doc) => asKfpRun(doc, flags.kfpRunId ?? '', opts.namespace));
  const results = asSubmitted.map((doc) => injectWorkflow(doc, opts));
  let code = EXIT_OK;
  for (const [i, r] of results.entries()) {
    for (const w of r.warnings ?? []) io.stderr.write(`kfp-notify inject: ${describeDoc(docs[i], i)}: ${w}\n`);
    if (r.outcome === 'skipped') {
      io.stderr.write(`kfp-notify inject: ${describeDoc(docs[i], i)} printed unchanged: ${r.reason ?? 'skipped'}\n`);
      if (r.reason?.startsWith('internal error')) code = EXIT_FAILURE;
    }
  }
  io.stdout.write(render(results, flags.output));
  return code;
}

export const command: Command = {
  name: 'inject',
  summary: 'print a Workflow as the webhook would admit it (dry run)',
  run,
};
