// Small statistics for benchmark samples: we report medians and percentiles, never single runs.

export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

export function mean(samples: readonly number[]): number {
  return samples.reduce((a, b) => a + b, 0) / samples.length;
}

/** Microseconds elapsed since `start` (from process.hrtime.bigint()). */
export function microsSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1000;
}

/** Runs `measure` `runs` times and returns the median of its results (one figure per run). */
export async function medianOfRuns(runs: number, measure: () => Promise<number>): Promise<number> {
  const results: number[] = [];
  for (let i = 0; i < runs; i++) results.push(await measure());
  return median(results);
}
