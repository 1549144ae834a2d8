// Durations in configuration: a number of milliseconds, or a string such as "250ms", "2s", "15m", "1h", "1d".

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration to milliseconds; throws an Error saying what is accepted. */
export function parseDuration(value: unknown): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  if (typeof value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(value);
    if (m) return Math.round(Number(m[1]) * UNITS[m[2]!]!);
  }
  throw new Error(
    `${JSON.stringify(value)} is not a duration; use milliseconds (e.g. 1500) or a string like "250ms", "2s", "15m", "1h", "1d"`,
  );
}
