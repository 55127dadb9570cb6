import { describe, expect, it } from 'vitest';
import { barChart, escapeXml, lineChart, logTicks, niceTicks } from '../../bench/lib/svg-chart.js';

/** [cx, cy] of every point marker, in document order. */
function circles(svg: string): [number, number][] {
  return [...svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)"/g)].map((m) => [Number(m[1]), Number(m[2])]);
}

/** [y, height] of every bar, in document order. */
function bars(svg: string): [number, number][] {
  return [...svg.matchAll(/<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"/g)].map((m) => [Number(m[1]), Number(m[2])]);
}

describe('ticks', () => {
  it('niceTicks covers the range in steps of 1, 2 or 5 × 10^k', () => {
    const t = niceTicks(3, 97);
    expect(t[0]).toBeLessThanOrEqual(3);
    expect(t[t.length - 1]).toBeGreaterThanOrEqual(97);
    const step = t[1]! - t[0]!;
    expect([1, 2, 5].some((m) => Number.isInteger(Math.log10(step / m)))).toBe(true);
    expect(t.every((v, i) => i === 0 || Math.abs(v - t[i - 1]! - step) < 1e-9)).toBe(true);
  });

  it('logTicks covers the range with 1-2-5 values and refuses non-positive ones', () => {
    expect(logTicks(0.3, 40)).toEqual([0.2, 0.5, 1, 2, 5, 10, 20, 50]);
    expect(() => logTicks(0, 10)).toThrow(RangeError);
  });
});

describe('lineChart', () => {
  const spec = {
    title: 'cost <vs> size & more',
    xLabel: 'steps',
    yLabel: 'ms',
    series: [{ name: 'a<b>', points: [{ x: 10, y: 1 }, { x: 100, y: 10 }, { x: 1000, y: 100 }] }],
  };

  it('draws a bigger value higher up (smaller y pixel) and a bigger x further right', () => {
    const [p1, p2, p3] = circles(lineChart(spec));
    expect(p1![0]).toBeLessThan(p2![0]);
    expect(p2![0]).toBeLessThan(p3![0]);
    expect(p1![1]).toBeGreaterThan(p2![1]);
    expect(p2![1]).toBeGreaterThan(p3![1]);
  });

  it('on log axes equal ratios are equal distances', () => {
    const [p1, p2, p3] = circles(lineChart({ ...spec, logX: true, logY: true }));
    expect(p2![0] - p1![0]).toBeCloseTo(p3![0] - p2![0], 0);
    expect(p1![1] - p2![1]).toBeCloseTo(p2![1] - p3![1], 0);
  });

  it('escapes every text it was given', () => {
    const svg = lineChart(spec);
    expect(svg).toContain('cost &lt;vs&gt; size &amp; more');
    expect(svg).toContain('a&lt;b&gt;');
    expect(svg).not.toContain('<b>');
    expect(escapeXml(`"'`)).toBe('&quot;&apos;');
  });

  it('refuses a chart without points', () => {
    expect(() => lineChart({ ...spec, series: [{ name: 'x', points: [] }] })).toThrow(/no points/);
  });
});

describe('barChart', () => {
  it('bar heights are proportional to the values, from a zero baseline', () => {
    const svg = barChart({ title: 't', xLabel: 'x', yLabel: 'y', categories: ['1', '10'], series: [{ name: 's', values: [1000, 2000] }] });
    const [[y1, h1], [y2, h2]] = bars(svg) as [[number, number], [number, number]];
    expect(h2 / h1).toBeCloseTo(2, 1);
    expect(y1 + h1).toBeCloseTo(y2 + h2, 5);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
  });
});
