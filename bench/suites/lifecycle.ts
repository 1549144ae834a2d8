// Suite (e): the lifecycle v2 figures. Hooks run outside the write lock, so (a) a plugin slow for
// one entity costs the others (almost) nothing, (b) a plugin slow for every entity is waited for
// concurrently, not one request after another, and (c) a login with no AuthCheck hook opens no
// write transaction and costs what the check costs without the engine around it.
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LifecycleEngine, serverRequest } from '../../src/lifecycle/engine.js';
import { NO_PLUGINS } from '../../src/lifecycle/dispatcher.js';
import { HashSlots } from '../../src/identity/hash-slots.js';
import { Identity } from '../../src/identity/identity.js';
import { verifySecret } from '../../src/identity/secrets.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { measureThroughput } from '../lib/measure.js';
import { count, type BenchOptions } from '../lib/options.js';
import { benchFixture } from '../lib/plugins.js';
import type { Report } from '../lib/report.js';
import { LOW_HASH, startServerProcess, type ServerProcess } from '../lib/server.js';
import { median } from '../lib/stats.js';

const SUITE = 'lifecycle';
const CLIENTS = 16;
const SECRET = 'bench-entity-secret';

/** The `plugins:` section of one sleeping plugin (nothing when `config` is undefined), and its directory's removal. */
function sleeper(config: { ms: number; only?: string } | undefined): { settings: Record<string, unknown>; remove(): void } {
  const directory = mkdtempSync(join(tmpdir(), 'keyhold-bench-sleeper-'));
  if (config) symlinkSync(benchFixture('sleeping-plugin'), join(directory, 'sleeping.js'));
  return {
    settings: { directory, plugins: config ? { sleeping: { config } } : {} },
    remove: () => rmSync(directory, { recursive: true, force: true }),
  };
}

/** A server with `config`'s plugin and CLIENTS entities (c0 …) plus "slow"; `run` gets an update of entity i. */
async function withServer<T>(
  config: { ms: number; only?: string } | undefined,
  run: (update: (id: string) => Promise<unknown>, server: ServerProcess) => Promise<T>,
): Promise<T> {
  const plugins = sleeper(config);
  const server = await startServerProcess(plugins.settings);
  try {
    for (const id of ['slow', ...Array.from({ length: CLIENTS }, (_, i) => `c${i}`)]) await server.api.call('POST', '/v1/entities', { id });
    let n = 0;
    return await run((id) => server.api.call('PATCH', `/v1/entities/${id}`, { displayName: `Bench ${n++}` }), server);
  } finally {
    await server.close();
    plugins.remove();
  }
}

/** Updates per second of CLIENTS clients, each on its own entity (client i on c<i>), `total` in all. */
function distinctClients(update: (id: string) => Promise<unknown>, total: number, clients = CLIENTS): Promise<number> {
  let next = 0;
  return measureThroughput(() => update(`c${next++ % clients}`), total, clients);
}

export async function lifecycle(report: Report, options: BenchOptions): Promise<void> {
  const n = count(options, 3_000);
  const runs = async (measure: () => Promise<number>) => {
    const all: number[] = [];
    for (let run = 0; run < options.runs; run++) all.push(await measure());
    return median(all);
  };

  // (a) One slow subject: a client keeps updating "slow" (200 ms in its PRE hook) while 16 others update their own entities.
  report.add(
    SUITE,
    '16 clients on 16 entities, no plugin',
    await withServer(undefined, (update) => runs(() => distinctClients(update, n))),
    'updates/s',
  );
  const beside = await withServer({ ms: 200, only: 'slow' }, (update) =>
    runs(async () => {
      let measuring = true;
      const slowClient = (async () => {
        while (measuring) await update('slow');
      })();
      const rate = await distinctClients(update, n);
      measuring = false;
      await slowClient;
      return rate;
    }),
  );
  report.compare(
    SUITE,
    '16 clients on 16 entities, beside a plugin sleeping 200 ms for one other entity',
    beside,
    'updates/s',
    '16 clients on 16 entities, no plugin',
    '≥ 0.8×',
  );

  // (b) A plugin sleeping 20 ms on every update: one client at a time, then 16 at once on distinct entities.
  const sleepN = count(options, 400);
  await withServer({ ms: 20 }, async (update) => {
    report.add(
      SUITE,
      'plugin sleeping 20 ms per update, 1 client',
      await runs(() => distinctClients(update, Math.max(1, Math.round(sleepN / 8)), 1)),
      'updates/s',
    );
    report.compare(
      SUITE,
      'plugin sleeping 20 ms per update, 16 clients on 16 entities',
      await runs(() => distinctClients(update, sleepN)),
      'updates/s',
      'plugin sleeping 20 ms per update, 1 client',
      '≥ 8×',
    );
  });

  // (c) Logins with no AuthCheck hook, in process: the engine's login beside the same check without it.
  const store = SqliteStore.open(':memory:');
  try {
    // Both go through the same bound on concurrent argon2 work, as the server's logins do.
    const slots = new HashSlots();
    const identity = new Identity(store, new LifecycleEngine(store, NO_PLUGINS), { hash: LOW_HASH, slots });
    const ids = Array.from({ length: CLIENTS }, (_, i) => `login${i}`);
    for (const id of ids) await identity.createEntity(serverRequest('bench'), { id, secret: SECRET });
    const logins = count(options, 5_000);
    let next = 0;
    // What a login must do at least: read the entity and its hash (one row, as the engine does), refuse a locked one, verify the secret (in an argon2 slot).
    const bare = async () => {
      const id = ids[next++ % ids.length]!;
      const record = await store.reader.loginRecord(id);
      if (!record || record.entity.meta.locked || !(await slots.run('verify', () => verifySecret(record.secretHash, SECRET))))
        throw new Error('the bench login failed');
    };
    const viaEngine = () => identity.authCheck(serverRequest(`login-${next}`), ids[next++ % ids.length]!, SECRET);
    // Interleaved, each first in every other run, so that both see the same load on a shared machine; after a warm-up of both (compiled code, not the first calls).
    const bareRuns: number[] = [];
    const engineRuns: number[] = [];
    const before = store.writeTransactions;
    for (const warmUp of [bare, viaEngine]) await measureThroughput(warmUp, logins, CLIENTS);
    // Twice the usual runs (plus one): a run is short (about a second), and one run slowed by another job moves a median of few.
    for (let run = 0; run < 2 * options.runs + 1; run++) {
      const pair = [
        { call: bare, into: bareRuns },
        { call: viaEngine, into: engineRuns },
      ];
      for (const { call, into } of run % 2 === 0 ? pair : pair.reverse()) into.push(await measureThroughput(call, logins, CLIENTS));
    }
    const transactions = store.writeTransactions - before;
    report.add(SUITE, 'login check without the engine (read + verify)', median(bareRuns), 'logins/s');
    report.compare(
      SUITE,
      'login through the engine, no AuthCheck hook',
      median(engineRuns),
      'logins/s',
      'login check without the engine (read + verify)',
      '≥ 0.95×',
    );
    // The same comparison run by run: when the machine's load drifts during the series, the two medians may come from different moments, each pair's ratio does not.
    report.add(
      SUITE,
      'login through the engine ÷ without it, median of the runs’ ratios',
      median(engineRuns.map((e, i) => e / bareRuns[i]!)),
      '×',
      '≥ 0.95×',
    );
    report.add(SUITE, 'write transactions during those logins', transactions, 'transactions', '0');
  } finally {
    await store.close();
  }
}
