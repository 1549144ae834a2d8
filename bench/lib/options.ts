// How much a run measures: the full counts, or `--quick` ones for a smoke run.
export interface BenchOptions {
  quick: boolean;
  /** Repeated runs per figure; the reported figure is their median. */
  runs: number;
  /** Multiplies every count (1 in a full run). */
  scale: number;
}

export function benchOptions(quick: boolean): BenchOptions {
  return quick ? { quick, runs: 3, scale: 0.1 } : { quick, runs: 5, scale: 1 };
}

/** `full` scaled for this run, at least 1. */
export function count(options: BenchOptions, full: number): number {
  return Math.max(1, Math.round(full * options.scale));
}
