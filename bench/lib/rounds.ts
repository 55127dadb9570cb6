/**
 * Runs every variant once per round, alternating the order from one round to the next (A B, B A,
 * ...), so neither side always runs first, warm, or right after the other's garbage.
 */
export async function interleaved<V extends string, T>(
  variants: readonly V[],
  rounds: number,
  measure: (variant: V, round: number) => Promise<T>,
): Promise<Record<V, T[]>> {
  const out = Object.fromEntries(variants.map((v) => [v, [] as T[]])) as Record<V, T[]>;
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? variants : [...variants].reverse();
    for (const v of order) out[v].push(await measure(v, r));
  }
  return out;
}

/** `ms` of wall time, for letting a server settle between runs. */
export const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
