/**
 * The arithmetic of a benchmark report. Pure: numbers in, numbers out.
 *
 * Every target is a ratio of the product to a baseline measured in the same run. Each round measures
 * both (order alternating), so a slow stretch of a noisy machine hits both sides of one round; the
 * reported ratio is the ratio of the medians, and its spread is the range of the per-round ratios.
 */

/** The q-quantile (0..1) with linear interpolation between closest ranks; NaN for no values. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  if (q < 0 || q > 1) throw new RangeError(`quantile must be within 0..1, got ${q}`);
  const sorted = Float64Array.from(values).sort();
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo] ?? NaN;
  const b = sorted[hi] ?? NaN;
  return a + (b - a) * (pos - lo);
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  /** (max - min) / median: how far apart the runs were, as a fraction of the median. */
  spread: number;
}

export function summarize(values: readonly number[]): Summary {
  const med = median(values);
  const min = values.length ? Math.min(...values) : NaN;
  const max = values.length ? Math.max(...values) : NaN;
  return { n: values.length, median: med, min, max, spread: med === 0 ? NaN : (max - min) / med };
}

export interface Comparison {
  product: Summary;
  baseline: Summary;
  /** median(product) / median(baseline). */
  ratio: number;
  /** product / baseline of each round. */
  roundRatios: Summary;
}

/** Product and baseline values of the same rounds (index i of each is one round). */
export function compare(product: readonly number[], baseline: readonly number[]): Comparison {
  if (product.length !== baseline.length) throw new Error(`rounds differ: ${product.length} product, ${baseline.length} baseline`);
  const p = summarize(product);
  const b = summarize(baseline);
  return { product: p, baseline: b, ratio: p.median / b.median, roundRatios: summarize(product.map((v, i) => v / (baseline[i] ?? NaN))) };
}

export type Verdict = 'PASS' | 'MISS';

/** `atLeast`: bigger is better (throughput ratio); `atMost`: smaller is better (latency ratio, RSS). */
export function verdict(value: number, target: number, direction: 'atLeast' | 'atMost'): Verdict {
  if (!Number.isFinite(value)) return 'MISS';
  return (direction === 'atLeast' ? value >= target : value <= target) ? 'PASS' : 'MISS';
}

/** A number for a table: 3 significant digits, no exponent for the sizes a bench sees. */
export function fmt(v: number, digits = 3): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const abs = Math.abs(v);
  if (abs >= 10 ** digits) return Math.round(v).toLocaleString('en-US');
  return Number(v.toPrecision(digits)).toString();
}
