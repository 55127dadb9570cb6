import { parseArgs } from 'node:util';
import { errorMessage } from '../../common/error-message.js';

/**
 * Numeric flags of a bench script (`--rounds 5 --duration 4`), each with a default. A bad value
 * stops the script with exit code 2 and a message naming the flag.
 */
export function numericFlags<K extends string>(name: string, defaults: Readonly<Record<K, number>>, argv = process.argv.slice(2)): Record<K, number> {
  const options = Object.fromEntries(Object.keys(defaults).map((k) => [k, { type: 'string' as const }]));
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }));
  } catch (err) {
    return usage(name, defaults, errorMessage(err));
  }
  const out: Record<K, number> = { ...defaults };
  for (const key of Object.keys(defaults) as K[]) {
    const raw = values[key];
    if (raw === undefined) continue;
    const n = Number(raw);
    if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(n) || n <= 0) return usage(name, defaults, `--${key} must be a positive number, got ${JSON.stringify(raw)}`);
    out[key] = n;
  }
  return out;
}

function usage(name: string, defaults: Readonly<Record<string, number>>, problem: string): never {
  const flags = Object.entries(defaults).map(([k, v]) => `[--${k} N (default ${v})]`).join(' ');
  process.stderr.write(`${name}: ${problem}\nUsage: ${name} ${flags}\n`);
  process.exit(2);
}
