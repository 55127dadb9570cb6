import { watch, statSync, readFileSync, type FSWatcher } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import type { Logger } from '../common/logger.js';

export interface FileWatch {
  /** Looks at the files now (without waiting for the next poll) and handles a change at once. */
  check(): void;
  close(): void;
}

export interface WatchOptions {
  /** The stat fallback's period. fs.watch misses changes on some volumes (and on symlink targets). */
  pollMs?: number;
  /** A rotation writes several files; wait for the writes to settle before reading them. */
  debounceMs?: number;
  logger?: Logger;
}

const DEFAULT_POLL_MS = 10_000;
const DEFAULT_DEBOUNCE_MS = 100;

// stat follows symlinks: when Kubernetes swaps a Secret volume's `..data` link, the inode changes.
function fingerprint(files: readonly string[]): string {
  return files
    .map((f) => {
      try {
        const s = statSync(f);
        return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
      } catch {
        return 'missing';
      }
    })
    .join('|');
}

/**
 * Calls `onChange` when any of `files` changes. Watches their directories (a Kubernetes Secret or
 * ConfigMap volume replaces files by renaming a `..data` symlink in that directory, which a watch on the
 * file itself would never see) and stats the files every `pollMs` as a fallback.
 */
export function watchFiles(files: readonly string[], onChange: () => void, opts: WatchOptions = {}): FileWatch {
  const paths = files.map((f) => resolve(f));
  let last = fingerprint(paths);
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const check = (): void => {
    if (closed) return;
    const now = fingerprint(paths);
    if (now === last) return;
    last = now;
    onChange();
  };
  const soon = (): void => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(check, opts.debounceMs ?? DEFAULT_DEBOUNCE_MS);
    timer.unref();
  };

  const watchers: FSWatcher[] = [];
  for (const dir of new Set(paths.map((p) => dirname(p)))) {
    try {
      const w = watch(dir, { persistent: false }, soon);
      w.on('error', (err) => opts.logger?.warn({ dir, err: err.message }, 'file watch failed; relying on polling'));
      watchers.push(w);
    } catch (err) {
      opts.logger?.warn({ dir, err: err instanceof Error ? err.message : String(err) }, 'cannot watch directory; relying on polling');
    }
  }
  const poll = setInterval(check, opts.pollMs ?? DEFAULT_POLL_MS);
  poll.unref();

  return {
    check,
    close() {
      closed = true;
      clearInterval(poll);
      if (timer) clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}

export interface CertPair {
  cert: string;
  key: string;
}

export interface CertInfo {
  subject: string;
  subjectAltName: string;
  validTo: string;
  fingerprint256: string;
}

/** Reads a PEM certificate (chain) and its key, and checks that they belong together. Throws a specific error. */
export function readCertPair(certFile: string, keyFile: string): CertPair & { info: CertInfo } {
  const read = (file: string, what: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`cannot read TLS ${what} ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const cert = read(certFile, 'certificate');
  const key = read(keyFile, 'key');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new Error(`${certFile} is not a PEM certificate`);
  }
  let matches: boolean;
  try {
    matches = x509.checkPrivateKey(createPrivateKey(key));
  } catch {
    throw new Error(`${keyFile} is not a PEM private key`);
  }
  if (!matches) throw new Error(`${keyFile} does not match the certificate in ${certFile}`);
  return {
    cert,
    key,
    info: { subject: x509.subject, subjectAltName: x509.subjectAltName ?? '', validTo: x509.validTo, fingerprint256: x509.fingerprint256 },
  };
}

export interface CertificateWatchOptions extends WatchOptions {
  certFile: string;
  keyFile: string;
  /** The pair being served now; a change back to identical bytes is not a reload. */
  current: CertPair;
  /** Puts a checked pair into service (server.setSecureContext). May throw: the old pair stays. */
  apply: (pair: CertPair) => void;
  onResult?: (result: 'reloaded' | 'rejected') => void;
  logger: Logger;
}

/**
 * Certificate rotation without a restart: when the files change, a new pair that reads and matches is
 * applied; a bad one (half-written, mismatched, unreadable) is logged and the old pair keeps serving.
 */
export function watchCertificate(opts: CertificateWatchOptions): FileWatch {
  let current = opts.current;
  const reload = (): void => {
    try {
      const next = readCertPair(opts.certFile, opts.keyFile);
      if (next.cert === current.cert && next.key === current.key) return;
      opts.apply(next);
      current = next;
      opts.logger.info({ certFile: opts.certFile, ...next.info }, 'serving certificate reloaded');
      opts.onResult?.('reloaded');
    } catch (err) {
      opts.logger.error(
        { certFile: opts.certFile, keyFile: opts.keyFile, err: err instanceof Error ? err.message : String(err) },
        'new serving certificate rejected; keeping the old one',
      );
      opts.onResult?.('rejected');
    }
  };
  return watchFiles([opts.certFile, opts.keyFile], reload, opts);
}
