import { describe, expect, it } from 'vitest';
import { compare, fmt, median, quantile, summarize, verdict } from '../../bench/lib/stats.js';

describe('quantile: linear interpolation between closest ranks', () => {
  it.each([
    // [values, q, expected]
    [[1, 2, 3, 4], 0.5, 2.5],
    [[4, 1, 3, 2], 0, 1],
    [[4, 1, 3, 2], 1, 4],
    [[10], 0.99, 10],
    [Array.from({ length: 100 }, (_, i) => i + 1), 0.99, 99.01],
  ])('%j at %d is %d', (values, q, expected) => {
    expect(quantile(values, q)).toBeCloseTo(expected, 10);
  });

  it('does not reorder the caller\'s array', () => {
    const values = [3, 1, 2];
    expect(median(values)).toBe(2);
    expect(values).toEqual([3, 1, 2]);
  });

  it('is NaN for no values and refuses a q outside 0..1', () => {
    expect(quantile([], 0.5)).toBeNaN();
    expect(() => quantile([1], 1.5)).toThrow(RangeError);
  });
});

describe('summarize and compare', () => {
  it('spread is the range as a fraction of the median', () => {
    expect(summarize([90, 100, 120])).toEqual({ n: 3, median: 100, min: 90, max: 120, spread: 0.3 });
  });

  it('the ratio is of the medians; the round ratios pair index i of each side', () => {
    const c = compare([50, 40, 60], [100, 100, 100]);
    expect(c.ratio).toBe(0.5);
    expect(c.roundRatios.min).toBe(0.4);
    expect(c.roundRatios.max).toBe(0.6);
    // A slow round hits both sides: its own ratio stays put while the medians move.
    expect(compare([10, 100], [20, 200]).roundRatios).toMatchObject({ min: 0.5, max: 0.5 });
  });

  it('refuses sides with different numbers of rounds', () => {
    expect(() => compare([1, 2], [1])).toThrow(/rounds differ/);
  });
});

describe('verdict', () => {
  it.each([
    // [value, target, direction, verdict]
    [0.6, 0.6, 'atLeast', 'PASS'],
    [0.59, 0.6, 'atLeast', 'MISS'],
    [2, 2, 'atMost', 'PASS'],
    [2.01, 2, 'atMost', 'MISS'],
    [NaN, 2, 'atMost', 'MISS'],
  ] as const)('%d against %d (%s) is %s', (value, target, direction, expected) => {
    expect(verdict(value, target, direction)).toBe(expected);
  });
});

describe('fmt', () => {
  it.each([
    [0.123456, '0.123'],
    [12.3456, '12.3'],
    [4329.4, '4,329'],
    [0, '0'],
    [NaN, 'NaN'],
  ])('%d prints as %s', (v, s) => {
    expect(fmt(v)).toBe(s);
  });
});
