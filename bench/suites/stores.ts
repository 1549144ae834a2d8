// Suite: the two stores through the real HTTP API of real server processes (docs/performance.md,
// "Stores"). Four servers (SQLite and PostgreSQL, each with no plugin and with one pass-through
// plugin on the PRE and POST hooks of the measured operations) are measured in turn on the same
// machine load: create, metadata update and AuthCheck, one client at a time and 8 in flight,
// interleaved runs, medians. Then one server against two servers on one PostgreSQL database, the
// same 8 clients all on the first server or split 4 + 4. The PostgreSQL cluster is a throwaway one
// (src/testing/postgres.ts) with fsync and synchronous commit on, so that each commit is as
// durable as SQLite's (synchronous = FULL): without that the comparison would be of fsyncs, not stores.
// Beside them: the disk's own fdatasync, the cores each process group used during the two-server
// figures (the machine is shared, and it is the CPU that limits them), and the load average.
import type { HookName } from 'keyhold-plugin-sdk';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { findPostgres, POSTGRES_MISSING, startPostgres, type TestPostgres } from '../../src/testing/postgres.js';
import { machineBusyCpu, ownCpu, pidsByCommandLine, processTreeCpu } from '../lib/cpu.js';
import type { ApiClient } from '../lib/http.js';
import { measureThroughput } from '../lib/measure.js';
import { count, type BenchOptions } from '../lib/options.js';
import { pluginSet, type PluginSet } from '../lib/plugins.js';
import type { Report } from '../lib/report.js';
import { startServerProcess, type ServerProcess } from '../lib/server.js';
import { median, microsSince } from '../lib/stats.js';

const SUITE = 'stores';
const IN_FLIGHT = 8;
const SECRET = 'bench-entity-secret';
/** The one plugin's hooks: PRE and POST of each measured operation (a hook is only called for its own operation). */
const HOOKS: HookName[] = ['preEntityCreate', 'postEntityCreate', 'preEntityUpdate', 'postEntityUpdate', 'preAuthCheck', 'postAuthCheck'];

interface Operation {
  name: string;
  /** One call by client `lane` (updates and checks on its own entity c<lane>); `i` numbers the calls of the whole suite (new ids, changing names). */
  call(api: ApiClient, lane: number, i: number): Promise<unknown>;
}

const OPERATIONS: Operation[] = [
  { name: 'create', call: (api, _lane, i) => api.call('POST', '/v1/entities', { id: `n${i}` }) },
  { name: 'metadata update', call: (api, lane, i) => api.call('PATCH', `/v1/entities/c${lane}`, { displayName: `Bench User ${i}` }) },
  { name: 'AuthCheck', call: (api, lane) => api.call('POST', '/v1/auth/check', { id: `c${lane}`, secret: SECRET }) },
];

/**
 * Through two servers, creates give their number: a create without one reads the next free number
 * before its hooks and writes it at commit, serialised by a lock of its own process only, so the two
 * servers hand out the same numbers and about 4 creates in 10 are refused with KH_ERR_NUMBER_TAKEN
 * (docs/performance.md, "Stores"). Both sides of the comparison make the same calls.
 */
const TWO_SERVER_OPERATIONS: Operation[] = [
  { name: 'create (number given)', call: (api, _lane, i) => api.call('POST', '/v1/entities', { id: `n${i}`, number: 1_000_000 + i }) },
  ...OPERATIONS.slice(1),
];

const SHAPES = [
  { name: 'sequential', inFlight: 1, full: 200 },
  { name: `${IN_FLIGHT} in flight`, inFlight: IN_FLIGHT, full: 800 },
] as const;

/** Each store with 0 and 1 plugin; a configuration's reference comes before it (report.compare looks it up by name). */
const CONFIGURATIONS = [
  { store: 'SQLite', plugins: 0, reference: undefined },
  { store: 'PostgreSQL', plugins: 0, reference: 'SQLite, 0 plugins' },
  { store: 'SQLite', plugins: 1, reference: 'SQLite, 0 plugins' },
  { store: 'PostgreSQL', plugins: 1, reference: 'PostgreSQL, 0 plugins' },
] as const;

type Configuration = (typeof CONFIGURATIONS)[number];

const label = (config: Configuration) => `${config.store}, ${config.plugins} plugin${config.plugins === 1 ? '' : 's'}`;

/** Collects one result per run under each figure's name, and the machine's 1-minute load average at each run's end. */
class Runs {
  readonly results = new Map<string, number[]>();
  readonly load: number[] = [];

  add(name: string, value: number): void {
    this.results.set(name, [...(this.results.get(name) ?? []), value]);
  }

  median(name: string): number {
    return median(this.results.get(name)!);
  }
}

/** Who used the CPU while a figure was measured, in CPU seconds, summed over runs with the wall time. */
interface CoreUse {
  wall: number;
  servers: number;
  postgres: number;
  client: number;
  machine: number;
}

const CORE_USERS = ['servers', 'postgres', 'client'] as const;

/** Runs `measure` and adds the CPU time it took, per process group, to `use`. */
async function countingCores(use: CoreUse, servers: number[], postgresPort: number, measure: () => Promise<number>): Promise<number> {
  const cluster = pidsByCommandLine(`\0port=${postgresPort}\0`);
  const sample = () => ({
    servers: processTreeCpu(servers),
    postgres: processTreeCpu(cluster),
    client: ownCpu(),
    machine: machineBusyCpu(),
  });
  const before = sample();
  const start = process.hrtime.bigint();
  const result = await measure();
  use.wall += microsSince(start) / 1e6;
  const after = sample();
  for (const key of [...CORE_USERS, 'machine'] as const) use[key] += after[key] - before[key];
  return result;
}

/** The median time of an 8 KiB write and its fdatasync in a fresh file of the temporary directory (where both stores keep their data), in µs. */
function fdatasyncMicros(n: number): number {
  const dir = mkdtempSync(join(tmpdir(), 'keyhold-bench-fsync-'));
  const fd = openSync(join(dir, 'file'), 'w');
  const block = Buffer.alloc(8192, 1);
  const samples: number[] = [];
  try {
    for (let k = 0; k < n; k++) {
      const start = process.hrtime.bigint();
      writeSync(fd, block);
      fdatasyncSync(fd);
      samples.push(microsSince(start));
    }
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
  return median(samples);
}

/** Creates the clients' entities c0 … c<IN_FLIGHT − 1> through `api`. */
async function createClients(api: ApiClient): Promise<void> {
  for (let lane = 0; lane < IN_FLIGHT; lane++) await api.call('POST', '/v1/entities', { id: `c${lane}`, secret: SECRET });
}

export async function stores(report: Report, options: BenchOptions): Promise<void> {
  if (!findPostgres()) {
    console.error(`  ${SUITE}: skipped, ${POSTGRES_MISSING.replace(/: the PostgreSQL store tests are skipped$/, '')}`);
    return;
  }
  const sets: PluginSet[] = [];
  const servers: ServerProcess[] = [];
  let postgres: TestPostgres | undefined;
  /** Starts a server with `plugins` pass-through plugins on `store` (a database URL, or SQLite), remembered for the cleanup. */
  const start = async (plugins: number, databaseUrl: string | undefined, bootstrap = true) => {
    const set = pluginSet(Array.from({ length: plugins }, () => HOOKS));
    sets.push(set);
    const store = databaseUrl === undefined ? {} : { store: { kind: 'postgres', url: databaseUrl } };
    const server = await startServerProcess(set.settings, store, { bootstrap });
    servers.push(server);
    return server;
  };
  try {
    postgres = await startPostgres({ durable: true });
    report.add(
      SUITE,
      'fdatasync after an 8 KiB write in the temporary directory, p50 (the disk under both stores)',
      fdatasyncMicros(count(options, 200)),
      'µs',
    );
    const single: ServerProcess[] = [];
    for (const config of CONFIGURATIONS) {
      const server = await start(config.plugins, config.store === 'PostgreSQL' ? await postgres.createDatabase() : undefined);
      await createClients(server.api);
      single.push(server);
    }
    const sharedUrl = await postgres.createDatabase();
    const first = await start(0, sharedUrl);
    await createClients(first.api);
    const second = await start(0, sharedUrl, false);

    let i = 0;
    const warmup = count(options, 100);
    for (const server of single)
      for (const op of OPERATIONS) await measureThroughput((lane) => op.call(server.api, lane, i++), warmup, IN_FLIGHT);
    for (const server of [first, second])
      for (const op of TWO_SERVER_OPERATIONS) await measureThroughput((lane) => op.call(server.api, lane, i++), warmup, IN_FLIGHT);

    const runs = new Runs();
    const cores = new Map<string, CoreUse>();
    const coresOf = (name: string) =>
      cores.get(name) ?? cores.set(name, { wall: 0, servers: 0, postgres: 0, client: 0, machine: 0 }).get(name)!;
    const both = [first.pid, second.pid];
    const oneServer = (op: Operation) => `${op.name}, ${IN_FLIGHT} in flight, one PostgreSQL server`;
    const twoServers = (op: Operation) => `${op.name}, ${IN_FLIGHT} in flight, two servers on one PostgreSQL (4 + 4 clients)`;
    const figure = (op: Operation, shape: (typeof SHAPES)[number], name: string) => `${op.name}, ${shape.name}, ${name}`;
    for (let run = 0; run < options.runs; run++) {
      for (const op of OPERATIONS) {
        for (const shape of SHAPES) {
          for (const [c, config] of CONFIGURATIONS.entries()) {
            const api = single[c]!.api;
            runs.add(
              figure(op, shape, label(config)),
              await measureThroughput((lane) => op.call(api, lane, i++), count(options, shape.full), shape.inFlight),
            );
          }
        }
      }
      const n = count(options, SHAPES[1].full);
      const half = IN_FLIGHT / 2;
      for (const op of TWO_SERVER_OPERATIONS) {
        const alone = () => measureThroughput((lane) => op.call(first.api, lane, i++), n, IN_FLIGHT);
        const split = () => measureThroughput((lane) => op.call((lane < half ? first : second).api, lane, i++), n, IN_FLIGHT);
        const turns = [
          { name: oneServer(op), measure: alone },
          { name: twoServers(op), measure: split },
        ];
        // Every other run the other way round, so that neither always runs right after the store figures' writes.
        if (run % 2 === 1) turns.reverse();
        for (const turn of turns) runs.add(turn.name, await countingCores(coresOf(turn.name), both, postgres.port, turn.measure));
      }
      runs.load.push(loadavg()[0]!);
    }

    for (const op of OPERATIONS) {
      for (const shape of SHAPES) {
        for (const config of CONFIGURATIONS) {
          const name = figure(op, shape, label(config));
          if (config.reference === undefined) report.add(SUITE, name, runs.median(name), 'ops/s');
          else report.compare(SUITE, name, runs.median(name), 'ops/s', figure(op, shape, config.reference));
        }
      }
    }
    for (const op of TWO_SERVER_OPERATIONS) {
      report.add(SUITE, oneServer(op), runs.median(oneServer(op)), 'ops/s');
      report.compare(SUITE, twoServers(op), runs.median(twoServers(op)), 'ops/s', oneServer(op));
    }
    for (const [name, use] of cores) {
      const ours = CORE_USERS.reduce((sum, key) => sum + use[key], 0);
      const shares = CORE_USERS.map((key) => `${key} ${(use[key] / use.wall).toFixed(2)}`).join(', ');
      report.add(
        SUITE,
        `cores used: ${name} (${shares}, other processes ${((use.machine - ours) / use.wall).toFixed(2)})`,
        ours / use.wall,
        'cores',
      );
    }
    report.add(SUITE, 'load average (1 min) at the end of a run, lowest', Math.min(...runs.load), '');
    report.add(SUITE, 'load average (1 min) at the end of a run, highest', Math.max(...runs.load), '');
  } finally {
    for (const server of servers) await server.close();
    for (const set of sets) set.remove();
    await postgres?.stop();
  }
}
