// Measures a call function: sequential latency and throughput with a fixed number in flight.
import { mean, microsSince, percentile } from './stats.js';

export interface LatencyFigures {
  p50: number;
  p99: number;
  mean: number;
}

/** Sequential round trips after a warm-up: latency in microseconds. */
export async function measureLatency(call: () => Promise<unknown>, count: number, warmup = Math.min(2000, count)): Promise<LatencyFigures> {
  for (let i = 0; i < warmup; i++) await call();
  const samples: number[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const start = process.hrtime.bigint();
    await call();
    samples[i] = microsSince(start);
  }
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), mean: mean(samples) };
}

/** Calls per second with `inFlight` calls outstanding at all times, over `count` calls; `call` gets its lane (0 … inFlight − 1), e.g. to play one client each. */
export async function measureThroughput(call: (lane: number) => Promise<unknown>, count: number, inFlight: number): Promise<number> {
  let started = 0;
  const start = process.hrtime.bigint();
  const lane = async (index: number) => {
    while (started < count) {
      started++;
      await call(index);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, (_, index) => lane(index)));
  return count / (microsSince(start) / 1e6);
}
