import { everyOutput } from './callback-process.js';

/**
 * What must never appear in a callback's output: hook tokens (any `kn1.` token, even a forged one a
 * caller sent), the hook key, the admin token, subscriber signing secrets (any `whsec_`) and
 * subscriber header values such as an Authorization token. Returns one line per leak, naming the
 * secret and quoting a little context (never the secret itself), so a failure is readable.
 */
export function leaks(output: string, named: Record<string, string>): string[] {
  const found: string[] = [];
  const context = (i: number) => JSON.stringify(output.slice(Math.max(0, i - 60), i)).slice(0, 80);
  for (const [pattern, what] of [
    [/kn1\.[A-Za-z0-9_-]/g, 'a hook token (kn1.…)'],
    [/whsec_/g, 'a signing secret (whsec_…)'],
  ] as const) {
    for (const m of output.matchAll(pattern)) found.push(`${what} after ${context(m.index ?? 0)}`);
  }
  for (const [name, value] of Object.entries(named)) {
    if (value.length < 8) throw new Error(`secret ${name} is too short to search for meaningfully`);
    const i = output.indexOf(value);
    if (i >= 0) found.push(`${name} after ${context(i)}`);
  }
  return found;
}

/** The leaks in everything the processes of this test file wrote; `named` must not be empty. */
export function leaksInThisFile(named: Record<string, string>): string[] {
  if (Object.keys(named).length === 0) throw new Error('no secrets to look for: the check would prove nothing');
  return leaks(everyOutput(), named);
}
