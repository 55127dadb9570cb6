import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { watchFiles, type FileWatch, type WatchOptions } from '../common/file-watch.js';
import type { Logger } from '../common/logger.js';
import { errorMessage } from '../common/error-message.js';

export { watchFiles, type FileWatch, type WatchOptions };

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
      throw new Error(`cannot read TLS ${what} ${file}: ${errorMessage(err)}`);
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
        { certFile: opts.certFile, keyFile: opts.keyFile, err: errorMessage(err) },
        'new serving certificate rejected; keeping the old one',
      );
      opts.onResult?.('rejected');
    }
  };
  return watchFiles([opts.certFile, opts.keyFile], reload, opts);
}
