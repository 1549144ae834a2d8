// Suite: the two stores through the real HTTP API of real server processes (docs/performance.md,
// "Stores"). Four servers (SQLite and PostgreSQL, each with no plugin and with one pass-through
// plugin on the PRE and POST hooks of the measured operations) are measured in turn on the same
// machine load: create, metadata update and AuthCheck, one client at a time and 8 in flight,
// interleaved runs, medians. Then one server against two servers on one PostgreSQL database, the
// same 8 clients all on the first server or split 4 + 4. The PostgreSQL cluster is a throwaway one
// (src/testing/postgres.ts) with fsync and synchronous commit on, so that each commit is as
// durable as SQLite's (synchronous = FULL): without that the comparison would be of fsyncs, not stores.
import type { HookName } from 'keyhold-plugin-sdk';
import { loadavg } from 'node:os';
import { findPostgres, POSTGRES_MISSING, startPostgres, type TestPostgres } from '../../src/testing/postgres.js';
import type { ApiClient } from '../lib/http.js';
import { measureThroughput } from '../lib/measure.js';
import { count, type BenchOptions } from '../lib/options.js';
import { pluginSet, type PluginSet } from '../lib/plugins.js';
import type { Report } from '../lib/report.js';
import { startServerProcess, type ServerProcess } from '../lib/server.js';
import { median } from '../lib/stats.js';

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
    for (const server of [...single, first, second])
      for (const op of OPERATIONS) await measureThroughput((lane) => op.call(server.api, lane, i++), warmup, IN_FLIGHT);

    const runs = new Runs();
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
        const n = count(options, SHAPES[1].full);
        runs.add(oneServer(op), await measureThroughput((lane) => op.call(first.api, lane, i++), n, IN_FLIGHT));
        const half = IN_FLIGHT / 2;
        runs.add(twoServers(op), await measureThroughput((lane) => op.call((lane < half ? first : second).api, lane, i++), n, IN_FLIGHT));
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
    for (const op of OPERATIONS) {
      report.add(SUITE, oneServer(op), runs.median(oneServer(op)), 'ops/s');
      report.compare(SUITE, twoServers(op), runs.median(twoServers(op)), 'ops/s', oneServer(op));
    }
    report.add(SUITE, 'load average (1 min) at the end of a run, lowest', Math.min(...runs.load), '');
    report.add(SUITE, 'load average (1 min) at the end of a run, highest', Math.max(...runs.load), '');
  } finally {
    for (const server of servers) await server.close();
    for (const set of sets) set.remove();
    await postgres?.stop();
  }
}
