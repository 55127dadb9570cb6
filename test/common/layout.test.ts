import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('../../', import.meta.url).pathname;

function tsFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Relative import specifiers of one file, resolved against the project root. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  return [...text.matchAll(/from '(\.[^']+)'/g)].map((m) => relative(ROOT, join(ROOT, file, '..', m[1] ?? '')));
}

// The two halves share knowledge through common/ only: what a KFP step is, a run's ids and names
// (common/kfp/), the hook contract and the names the injector adds. Neither half reaches into the other.
describe('layout', () => {
  it.each([
    ['callback', 'webhook/'],
    ['webhook', 'callback/'],
    ['common', 'webhook/'],
    ['common', 'callback/'],
  ])('%s/ imports nothing from %s', (dir, forbidden) => {
    const offenders = tsFiles(dir).flatMap((f) => importsOf(f).filter((i) => i.startsWith(forbidden)).map((i) => `${f} -> ${i}`));
    expect(offenders).toEqual([]);
  });
});
