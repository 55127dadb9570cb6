import { X509Certificate } from 'node:crypto';
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { ensureDataDir } from '../common/data-dir.js';
import { readCertPair } from './tls-reload.js';

export const DEFAULT_HOSTNAMES = ['localhost', '127.0.0.1'] as const;
const DAY_MS = 24 * 60 * 60 * 1000;
const VALID_DAYS = 365;
/** A certificate this close to expiry is replaced rather than reused. */
const RENEW_BEFORE_DAYS = 30;

export interface GenerateCertOptions {
  commonName?: string;
  notBefore?: Date;
  notAfter?: Date;
}

/**
 * A CA-less self-signed certificate (ECDSA P-256, SHA-256) for `hostnames`: DNS names and IP addresses
 * both go into subjectAltName. A client trusts it by trusting the certificate itself (Go's verifier, and
 * so a kube-apiserver `caBundle`, accepts a leaf that is in its root pool; so do Node and curl).
 */
export async function generateSelfSigned(hostnames: readonly string[], opts: GenerateCertOptions = {}): Promise<{ cert: string; key: string }> {
  if (hostnames.length === 0) throw new Error('a certificate needs at least one hostname');
  const notBeforeDate = opts.notBefore ?? new Date();
  const pems = await generate([{ name: 'commonName', value: opts.commonName ?? hostnames[0] }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate: opts.notAfter ?? new Date(notBeforeDate.getTime() + VALID_DAYS * DAY_MS),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true }, // ECDSA: no keyEncipherment
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: hostnames.map((h) => (isIP(h) ? { type: 7 as const, ip: h } : { type: 2 as const, value: h })) },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

function reusable(certFile: string, keyFile: string, hostnames: readonly string[]): boolean {
  if (!existsSync(certFile) || !existsSync(keyFile)) return false;
  try {
    const { cert } = readCertPair(certFile, keyFile);
    const x509 = new X509Certificate(cert);
    const covers = hostnames.every((h) => (isIP(h) ? x509.checkIP(h) : x509.checkHost(h)) !== undefined);
    return covers && Date.parse(x509.validTo) - Date.now() > RENEW_BEFORE_DAYS * DAY_MS;
  } catch {
    return false;
  }
}

// Write then rename: a reader (or a second process) never sees half a PEM file.
function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, file);
}

export interface SelfSignedFiles {
  certFile: string;
  keyFile: string;
  /** False when a still-valid certificate for the same hostnames was already there. */
  created: boolean;
}

/**
 * The local (no cluster) serving certificate: `<dir>/webhook-tls.crt` and `<dir>/webhook-tls.key`, made
 * once and reused until it nears expiry or stops covering `hostnames`. `kfp-notify serve` calls this.
 */
export const SELF_SIGNED_CERT_FILE = 'webhook-tls.crt';
export const SELF_SIGNED_KEY_FILE = 'webhook-tls.key';

export async function ensureSelfSignedCert(dir: string, hostnames: readonly string[] = DEFAULT_HOSTNAMES): Promise<SelfSignedFiles> {
  ensureDataDir(dir);
  const certFile = join(dir, SELF_SIGNED_CERT_FILE);
  const keyFile = join(dir, SELF_SIGNED_KEY_FILE);
  if (reusable(certFile, keyFile, hostnames)) return { certFile, keyFile, created: false };
  const { cert, key } = await generateSelfSigned(hostnames);
  writeAtomic(keyFile, key, 0o600);
  writeAtomic(certFile, cert, 0o644);
  return { certFile, keyFile, created: true };
}
