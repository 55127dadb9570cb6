import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { quantile } from './stats.js';

/**
 * What one fdatasync costs on the disk under `dir` (append 4 KiB, flush, `n` times): the floor under
 * any commit that must be on disk before it is acknowledged.
 */
export async function fdatasyncMs(dir: string, n = 50): Promise<{ p50: number; p99: number }> {
  const file = join(dir, 'fsync-probe');
  const fh = await open(file, 'w');
  const block = Buffer.alloc(4096, 7);
  const times: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      await fh.write(block);
      const t0 = performance.now();
      await fh.datasync();
      times.push(performance.now() - t0);
    }
  } finally {
    await fh.close();
    await rm(file, { force: true });
  }
  return { p50: quantile(times, 0.5), p99: quantile(times, 0.99) };
}
