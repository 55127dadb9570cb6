import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { Logger } from '../../common/logger.js';
import { parseDocuments } from '../../common/yaml-docs.js';
import type { SecretRef, Subscriber } from '../types.js';
import { parseSubscribers } from './parse.js';
import { errorMessage } from '../../common/error-message.js';

/**
 * Subscribers from local files, watched: the same keys as the cluster's ConfigMap `data`
 * (a whole ConfigMap manifest is accepted too), and signing secrets from a separate file shaped
 * `{ "<secret name>": { "<key>": "<value>" } }` (YAML or JSON), as a Kubernetes Secret would hold them.
 *
 * A change applies without a restart. A file that does not parse, or names a secret that is not
 * there, keeps the last good set and logs every error: a typo must not silence every subscriber.
 * At start there is no last good set, so loading throws SubscriberConfigError with the errors.
 */

export interface SubscriberFileOptions {
  file: string;
  secretsFile?: string;
  log: Logger;
  /** Coalesces the burst of events an editor's save produces (default 100 ms). */
  debounceMs?: number;
}

export interface FileSubscriberSource {
  current(): readonly Subscriber[];
  /** Called after every change that applied; returns an unsubscribe function. */
  onChange(listener: (subscribers: readonly Subscriber[]) => void): () => void;
  close(): void;
}

export class SubscriberConfigError extends Error {
  constructor(
    readonly source: string,
    readonly errors: readonly string[],
  ) {
    super(`${source}: ${errors.join('; ')}`);
    this.name = 'SubscriberConfigError';
  }
}

type SecretsFile = Record<string, Record<string, string>>;

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** The first document; a ConfigMap or Secret manifest gives its data. */
function firstDocument(text: string, source: string): Record<string, unknown> {
  const doc = asRecord(parseDocuments(text, source)[0]) ?? {};
  const kind = doc.kind;
  if ((kind === 'ConfigMap' || kind === 'Secret') && 'data' in doc) return asRecord(doc.data) ?? {};
  return doc;
}

function readSecrets(text: string, source: string): SecretsFile {
  let doc: Record<string, unknown>;
  try {
    doc = firstDocument(text, source);
  } catch {
    // The parser's message quotes the offending line, which here is a secret: say only where.
    throw new SubscriberConfigError(source, ['not valid YAML or JSON (details withheld: the file holds secrets)']);
  }
  const out: SecretsFile = {};
  for (const [name, keys] of Object.entries(doc)) {
    const rec = asRecord(keys);
    if (!rec) throw new SubscriberConfigError(source, [`secret ${name} must map keys to values`]);
    out[name] = Object.fromEntries(Object.entries(rec).map(([k, v]) => [k, String(v)]));
  }
  return out;
}

/** Reads and parses both files once; throws SubscriberConfigError on any error. */
export async function loadSubscriberFiles(file: string, secretsFile?: string): Promise<Subscriber[]> {
  const secrets = secretsFile ? readSecrets(await readFile(secretsFile, 'utf8'), secretsFile) : {};
  const data = firstDocument(await readFile(file, 'utf8'), file);
  const resolveSecret = (ref: SecretRef): string | undefined => secrets[ref.name]?.[ref.key];
  const { subscribers, errors } = parseSubscribers(data, resolveSecret);
  if (errors.length > 0) throw new SubscriberConfigError(file, errors);
  return subscribers;
}

function errorsOf(err: unknown): string[] {
  if (err instanceof SubscriberConfigError) return [...err.errors];
  return [errorMessage(err)];
}

export async function watchSubscriberFiles(opts: SubscriberFileOptions): Promise<FileSubscriberSource> {
  const file = resolve(opts.file);
  const secretsFile = opts.secretsFile ? resolve(opts.secretsFile) : undefined;
  let current = await loadSubscriberFiles(file, secretsFile);
  let applied = JSON.stringify(current);
  const listeners = new Set<(s: readonly Subscriber[]) => void>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  /** The last load was rejected: the next good one is logged even if it equals what runs (the edit was undone). */
  let rejected = false;

  async function reload(): Promise<void> {
    let next: Subscriber[];
    try {
      next = await loadSubscriberFiles(file, secretsFile);
    } catch (err) {
      if (!closed) opts.log.error({ file, errors: errorsOf(err) }, 'subscriber config rejected; keeping the last good one');
      rejected = true;
      return;
    }
    const text = JSON.stringify(next);
    if (!closed && rejected) opts.log.info({ file, subscribers: next.map((s) => s.name), changed: text !== applied }, 'subscriber config accepted again');
    rejected = false;
    if (closed || text === applied) return;
    current = next;
    applied = text;
    opts.log.info({ file, subscribers: next.map((s) => s.name) }, 'subscriber config reloaded');
    for (const l of listeners) l(current);
  }

  // Watch the directories, not the files: editors and `kubectl cp` replace a file by renaming over
  // it, which ends a watch on the old inode.
  const watched = [file, ...(secretsFile ? [secretsFile] : [])];
  const watchers: FSWatcher[] = [...new Set(watched.map((f) => dirname(f)))].map((dir) =>
    watch(dir, { persistent: false }, (_event, name) => {
      if (name !== null && !watched.some((f) => dirname(f) === dir && basename(f) === name)) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => void reload(), opts.debounceMs ?? 100);
    }),
  );

  return {
    current: () => current,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}
