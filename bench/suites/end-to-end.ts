// Suite: what plugins on an operation's own hooks cost end to end, through the real HTTP API.
// Three servers (no plugins; 1 pass-through plugin; 5), each plugin implementing the PRE and POST
// hooks of both measured operations (a hook is only called for its own operation), measured in
// turn on the same machine load (interleaved runs, medians): metadata updates and AuthChecks,
// one client at a time and 8 in flight, each client on an entity of its own (login throttling as
// the server defaults it: it counts failures, and every login here succeeds).
import type { HookName } from 'keyhold-plugin-sdk';
import { measureThroughput } from '../lib/measure.js';
import { count, type BenchOptions } from '../lib/options.js';
import { pluginSet, type PluginSet } from '../lib/plugins.js';
import type { Report } from '../lib/report.js';
import { startServerProcess, type ServerProcess } from '../lib/server.js';
import { median } from '../lib/stats.js';

const SUITE = 'end-to-end';
const IN_FLIGHT = 8;
const SECRET = 'bench-entity-secret';
const HOOKS: HookName[] = ['preEntityUpdate', 'postEntityUpdate', 'preAuthCheck', 'postAuthCheck'];
const CONFIGURATIONS = [
  { name: 'no plugins', plugins: 0 },
  { name: '1 plugin (PRE + POST)', plugins: 1 },
  { name: '5 plugins (PRE + POST each)', plugins: 5 },
] as const;

interface Operation {
  name: string;
  /** One call by client `lane` (on its own entity c<lane>); `i` numbers the calls, for a changing display name. */
  call(server: ServerProcess, lane: number, i: number): Promise<unknown>;
}

const OPERATIONS: Operation[] = [
  {
    name: 'metadata update',
    call: (server, lane, i) => server.api.call('PATCH', `/v1/entities/c${lane}`, { displayName: `Bench User ${i}` }),
  },
  { name: 'AuthCheck', call: (server, lane) => server.api.call('POST', '/v1/auth/check', { id: `c${lane}`, secret: SECRET }) },
];

const SHAPES = [
  { name: 'sequential', inFlight: 1, full: 300 },
  { name: `${IN_FLIGHT} in flight`, inFlight: IN_FLIGHT, full: 1_500 },
] as const;

export async function endToEnd(report: Report, options: BenchOptions): Promise<void> {
  const sets: PluginSet[] = [];
  const servers: ServerProcess[] = [];
  try {
    for (const config of CONFIGURATIONS) {
      const set = pluginSet(Array.from({ length: config.plugins }, () => HOOKS));
      sets.push(set);
      const server = await startServerProcess(set.settings);
      servers.push(server);
      for (let lane = 0; lane < IN_FLIGHT; lane++) await server.api.call('POST', '/v1/entities', { id: `c${lane}`, secret: SECRET });
    }
    let i = 0;
    const warmup = count(options, 200);
    for (const server of servers)
      for (const op of OPERATIONS) await measureThroughput((lane) => op.call(server, lane, i++), warmup, IN_FLIGHT);

    // figure name → one result per run; within a run the three servers are measured one after another.
    const results = new Map<string, number[]>();
    const figure = (op: Operation, shape: (typeof SHAPES)[number], config: (typeof CONFIGURATIONS)[number]) =>
      `${op.name}, ${shape.name}, ${config.name}`;
    for (let run = 0; run < options.runs; run++) {
      for (const op of OPERATIONS) {
        for (const shape of SHAPES) {
          for (const [c, config] of CONFIGURATIONS.entries()) {
            const server = servers[c]!;
            const rate = await measureThroughput((lane) => op.call(server, lane, i++), count(options, shape.full), shape.inFlight);
            const name = figure(op, shape, config);
            results.set(name, [...(results.get(name) ?? []), rate]);
          }
        }
      }
    }
    for (const op of OPERATIONS) {
      for (const shape of SHAPES) {
        const reference = figure(op, shape, CONFIGURATIONS[0]);
        report.add(SUITE, reference, median(results.get(reference)!), 'ops/s');
        for (const config of CONFIGURATIONS.slice(1)) {
          const goal = op === OPERATIONS[0] && shape.inFlight === IN_FLIGHT && config.plugins === 5 ? '≥ 0.6×' : undefined;
          const name = figure(op, shape, config);
          report.compare(SUITE, name, median(results.get(name)!), 'ops/s', reference, goal);
        }
      }
    }
  } finally {
    for (const server of servers) await server.close();
    for (const set of sets) set.remove();
  }
}
