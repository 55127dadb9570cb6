import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Cleanup = () => unknown;

export interface Cleanups {
  push(c: Cleanup): void;
  /** A fresh directory under the OS temp dir, removed with the rest. */
  tempDir(): string;
  /** Runs what was pushed, newest first (a server closes before its directory goes); register as afterEach or afterAll. */
  run(): Promise<void>;
}

/** What a test file opens (servers, watchers, scratch directories) and must close after its tests. */
export function cleanups(tempPrefix: string): Cleanups {
  const list: Cleanup[] = [];
  const self: Cleanups = {
    push: (c) => void list.push(c),
    tempDir() {
      const dir = mkdtempSync(join(tmpdir(), tempPrefix));
      list.push(() => rmSync(dir, { recursive: true, force: true }));
      return dir;
    },
    async run() {
      for (const c of list.splice(0).reverse()) await c();
    },
  };
  return self;
}
