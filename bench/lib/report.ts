import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/**
 * What every bench writes: its raw results as JSON under bench/results/ (gitignored) and a markdown
 * table on stdout, both stamped with the machine they ran on, since a figure without its machine
 * cannot be compared with anything.
 */

/** The repository root, from the compiled file (bench/dist/bench/lib/) or the source (bench/lib/). */
export const REPO_ROOT = fileURLToPath(new URL(import.meta.url.includes('/bench/dist/') ? '../../../../' : '../../', import.meta.url));
export const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');
export const CHARTS_DIR = join(REPO_ROOT, 'docs', 'charts');

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  kernel: string;
  date: string;
}

function cpuModel(): string {
  // os.cpus() reports what /proc/cpuinfo says; a VM may hide all but the vendor.
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    if (line) return line.split(':')[1]?.trim() ?? 'unknown';
  } catch {
    // not Linux
  }
  return cpus()[0]?.model ?? 'unknown';
}

export function machine(): Machine {
  return {
    cpu: cpuModel(),
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    kernel: release(),
    date: new Date().toISOString(),
  };
}

export function describeMachine(m: Machine): string {
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB RAM, Node ${m.node}, Linux ${m.kernel}, ${m.date.slice(0, 10)}`;
}

/** A GitHub markdown table; cells are text (pipes escaped). */
export function markdownTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  return [
    `| ${headers.map(cell).join(' | ')} |`,
    `|${headers.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
}

/** Writes bench/results/<name>-<timestamp>.json and returns its path. */
export function writeResults(name: string, data: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

export function writeChart(file: string, svg: string): string {
  mkdirSync(CHARTS_DIR, { recursive: true });
  const path = join(CHARTS_DIR, file);
  writeFileSync(path, svg);
  return path;
}
