const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A config duration → milliseconds, or undefined when unreadable. Text carries its unit ("500ms",
 * "10s", "5m", "2h", "5d"); a bare number is in `numberUnitMs` (ms for `timeout`, seconds for retry steps,
 * as the keys document).
 */
export function durationMs(value: unknown, numberUnitMs: number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value * numberUnitMs : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(value.trim());
  if (!m) return undefined;
  const unit = m[2];
  return Number(m[1]) * (unit ? (UNIT_MS[unit] as number) : numberUnitMs);
}
