// Suite (d): the committed stage. What writing the event costs a write (throughput with one
// committed subscriber beside none), how fast the outbox drains a backlog, and the commit-to-
// delivery lag under a steady write load, with one and with three subscribed plugins.
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { measureThroughput } from '../lib/measure.js';
import { count, type BenchOptions } from '../lib/options.js';
import { benchFixture } from '../lib/plugins.js';
import type { Report } from '../lib/report.js';
import { startServerProcess, type ServerProcess } from '../lib/server.js';
import { median, percentile } from '../lib/stats.js';

const SUITE = 'committed';
const IN_FLIGHT = 8;
const ENTITIES = 16;
/** The steady load: writes per second, spread evenly; about a third of what this machine commits at most, i.e. below saturation. */
const STEADY_RATE = 100;
/** How long the outbox may take to deliver everything after the load before the run counts as failed. */
const DRAIN_LIMIT_MS = 120_000;

interface Sinks {
  settings: Record<string, unknown>;
  files: string[];
  /** Creating this file lets gated sinks take events. */
  gate: string;
  remove(): void;
}

/** `n` committed-sink plugins (s1, s2, …), each writing its deliveries to its own file; `gated`: taking nothing until the gate opens. */
function sinks(n: number, gated = false): Sinks {
  const directory = mkdtempSync(join(tmpdir(), 'keyhold-bench-sinks-'));
  const plugin = benchFixture('committed-sink');
  const files: string[] = [];
  const gate = join(directory, 'open');
  const plugins: Record<string, unknown> = {};
  for (let i = 1; i <= n; i++) {
    symlinkSync(plugin, join(directory, `s${i}.js`));
    files.push(join(directory, `s${i}.deliveries`));
    // A gated sink holds its first event until the gate opens: no timeout may count that as a failure.
    plugins[`s${i}`] = gated
      ? { timeout: `${DRAIN_LIMIT_MS}ms`, config: { file: files.at(-1)!, gate } }
      : { config: { file: files.at(-1)! } };
  }
  return { settings: { directory, plugins }, files, gate, remove: () => rmSync(directory, { recursive: true, force: true }) };
}

/** Each file's deliveries: [delivered at (epoch ms), lag (ms)]. */
function deliveries(file: string): [number, number][] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .trimEnd()
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ').map(Number) as [number, number]);
}

/** Waits (bounded) until every file holds `expected` deliveries; returns them, per file. */
async function drained(files: readonly string[], expected: number): Promise<[number, number][][]> {
  const until = Date.now() + DRAIN_LIMIT_MS;
  for (;;) {
    const all = files.map(deliveries);
    if (all.every((d) => d.length >= expected)) return all;
    if (Date.now() > until)
      throw new Error(`the outbox delivered ${all.map((d) => d.length).join('/')} of ${expected} events within ${DRAIN_LIMIT_MS} ms`);
    await sleep(50);
  }
}

async function withServer<T>(
  plugins: Record<string, unknown>,
  run: (server: ServerProcess, update: () => Promise<unknown>) => Promise<T>,
): Promise<T> {
  const server = await startServerProcess(plugins);
  try {
    const ids = Array.from({ length: ENTITIES }, (_, i) => `bench${i}`);
    for (const id of ids) await server.api.call('POST', '/v1/entities', { id });
    let next = 0;
    const update = () => {
      const i = next++;
      return server.api.call('PATCH', `/v1/entities/${ids[i % ENTITIES]}`, { displayName: `Bench User ${i}` });
    };
    return await run(server, update);
  } finally {
    await server.close();
  }
}

/** `total` writes at `rate` per second, each started on schedule (not waiting for the one before). */
async function steadyLoad(update: () => Promise<unknown>, total: number, rate: number): Promise<void> {
  const start = Date.now();
  const writes: Promise<unknown>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    if (due > Date.now()) await sleep(due - Date.now());
    writes.push(update());
  }
  await Promise.all(writes);
}

export async function committed(report: Report, options: BenchOptions): Promise<void> {
  const n = count(options, 3_000);

  // The cost of the event in the write: saturating writes, no subscriber beside one.
  const throughput = (plugins: Record<string, unknown>) =>
    withServer(plugins, async (_server, update) => {
      const runs: number[] = [];
      for (let run = 0; run < options.runs; run++) runs.push(await measureThroughput(update, n, IN_FLIGHT));
      return median(runs);
    });
  const none = sinks(0);
  try {
    report.add(SUITE, 'metadata update, no committed subscriber', await throughput(none.settings), 'ops/s');
  } finally {
    none.remove();
  }
  const one = sinks(1);
  try {
    report.compare(
      SUITE,
      'metadata update, 1 committed subscriber',
      await throughput(one.settings),
      'ops/s',
      'metadata update, no committed subscriber',
    );
  } finally {
    one.remove();
  }

  // Draining a backlog: n events committed while the plugin takes nothing, then the rate at which
  // the outbox delivers them once it does (no write competing).
  const backlog = sinks(1, true);
  try {
    const rate = await withServer(backlog.settings, async (_server, update) => {
      await measureThroughput(update, n, IN_FLIGHT);
      writeFileSync(backlog.gate, '');
      const [got] = await drained(backlog.files, n);
      const times = got!.slice(0, n).map(([at]) => at);
      return (n - 1) / ((Math.max(...times) - Math.min(...times)) / 1000);
    });
    report.add(SUITE, 'delivery rate, draining a backlog, 1 subscriber', rate, 'events/s');
  } finally {
    backlog.remove();
  }

  // Lag under a steady load below saturation, the figure that matters in operation.
  const steady = count(options, STEADY_RATE * 10);
  for (const subscribers of [1, 3]) {
    const set = sinks(subscribers);
    try {
      const lags = await withServer(set.settings, async (_server, update) => {
        await steadyLoad(update, steady, STEADY_RATE);
        return (await drained(set.files, steady)).flatMap((got) => got.slice(0, steady).map(([, lag]) => lag));
      });
      const label = `${STEADY_RATE} writes/s, ${subscribers} subscriber${subscribers > 1 ? 's' : ''}`;
      report.add(SUITE, `commit-to-delivery lag p50, ${label}`, percentile(lags, 50), 'ms');
      report.add(SUITE, `commit-to-delivery lag p99, ${label}`, percentile(lags, 99), 'ms');
    } finally {
      set.remove();
    }
  }
}
