import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Store faults made real: a small tmpfs for a full disk, and another process holding a write lock
 * on the SQLite file.
 */

const REPO = fileURLToPath(new URL('../../..', import.meta.url));

/**
 * Mounts a tmpfs of `bytes` at `dir`. Needs root (or CAP_SYS_ADMIN); returns why not when it
 * cannot, so the caller can skip with a reason instead of failing on a machine that forbids mounts.
 */
export function mountTmpfs(dir: string, bytes: number): string | undefined {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.error) return `mount is not available: ${r.error.message}`;
  return r.status === 0 ? undefined : `mount -t tmpfs failed: ${r.stderr.trim() || `exit ${r.status}`}`;
}

export function unmount(dir: string): void {
  spawnSync('umount', ['-l', dir]);
  rmSync(dir, { recursive: true, force: true });
}

/** Fills the filesystem holding `file` to the last byte (ENOSPC), and returns how much it wrote. */
export function fillDisk(file: string): number {
  const fd = openSync(file, 'w');
  let written = 0;
  try {
    for (const size of [1 << 20, 1 << 16, 1 << 12, 1 << 8, 1]) {
      const chunk = Buffer.alloc(size, 0x61);
      for (;;) {
        try {
          written += writeSync(fd, chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw err;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}

/**
 * Another process (plain better-sqlite3, as an operator's script or a second tool would) that opens
 * `dbFile` and holds a write transaction until `release()`; `locked` resolves once it holds it, or
 * rejects with SQLite's error when it cannot get the lock.
 */
export function holdWriteLock(dbFile: string): { locked: Promise<void>; release(): Promise<void>; child: ChildProcess } {
  const code = `
    import Database from 'better-sqlite3';
    const db = new Database(process.argv[1], { timeout: 200 });
    try {
      db.exec('BEGIN IMMEDIATE');
      db.exec('CREATE TABLE IF NOT EXISTS foreign_writer (x)');
      db.exec('INSERT INTO foreign_writer VALUES (1)');
    } catch (err) {
      process.stdout.write('failed: ' + err.code + ' ' + err.message + '\\n');
      process.exit(3);
    }
    process.stdout.write('holding\\n');
    process.stdin.once('data', () => { db.exec('COMMIT'); db.close(); process.exit(0); });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code, dbFile], { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  const locked = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('holding')) resolve();
    });
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    void exited.then(() => reject(new Error(out.trim())));
  });
  locked.catch(() => undefined);
  return {
    locked,
    child,
    async release() {
      if (child.exitCode === null) child.stdin?.write('go\n');
      await exited;
    },
  };
}
