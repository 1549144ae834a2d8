// Suite 5: a store of 100k entities, through Identity directly (no HTTP, no plugins, no secrets:
// the store and the lifecycle engine alone): create rate, info and search latency, and the
// members of a large group.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Identity } from '../../src/identity/identity.js';
import { NO_PLUGINS } from '../../src/lifecycle/dispatcher.js';
import { LifecycleEngine, serverRequest } from '../../src/lifecycle/engine.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { measureLatency, measureThroughput } from '../lib/measure.js';
import { count, type BenchOptions } from '../lib/options.js';
import type { Report } from '../lib/report.js';
import { LOW_HASH } from '../lib/server.js';

const SUITE = 'scale';
const INFO = serverRequest('bench');

export async function scale(report: Report, options: BenchOptions): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'keyhold-bench-scale-'));
  const store = SqliteStore.open(join(dir, 'keyhold.sqlite'));
  try {
    const identity = new Identity(store, new LifecycleEngine(store, NO_PLUGINS), { hash: LOW_HASH });
    const entities = count(options, 100_000);
    const members = count(options, 10_000);
    const id = (i: number) => `user${String(i).padStart(6, '0')}`;
    let created = 0;
    const create = () => {
      const i = created++;
      return identity.createEntity(INFO, { id: id(i), meta: { displayName: `User Number ${i}`, legalName: `Legal Name ${i}` } });
    };
    report.add(
      SUITE,
      `create ${entities.toLocaleString('en-US')} entities (8 in flight, fsync per commit)`,
      await measureThroughput(create, entities, 8),
      'entities/s',
    );

    let probe = 0;
    // A spread of ids, so that the figure is not one cached row.
    const randomId = () => id((probe++ * 7919) % entities);
    const latencyRuns = count(options, 5_000);
    const info = await measureLatency(() => identity.entityInfo(randomId()), latencyRuns);
    report.add(SUITE, `entity info p50, ${entities.toLocaleString('en-US')} entities`, info.p50, 'µs');
    report.add(SUITE, `entity info p99`, info.p99, 'µs');
    const searchRuns = count(options, 500);
    const exact = await measureLatency(() => identity.searchEntities({ text: `Number ${(probe++ * 7919) % entities}` }), searchRuns, 20);
    report.add(SUITE, 'search by display-name substring p50 (≤ 100 results)', exact.p50, 'µs');
    const firstPage = await measureLatency(() => identity.searchEntities({ text: '' }), searchRuns, 20);
    report.add(SUITE, 'search, first page of all (100 results) p50', firstPage.p50, 'µs');

    await identity.createGroup(INFO, { name: 'everyone' });
    let added = 0;
    const add = () => identity.addMember(INFO, 'everyone', id(added++));
    report.add(
      SUITE,
      `add ${members.toLocaleString('en-US')} members to one group (8 in flight)`,
      await measureThroughput(add, members, 8),
      'members/s',
    );
    const listed = await measureLatency(() => identity.groupMembers('everyone'), count(options, 200), 5);
    report.add(SUITE, `members of a ${members.toLocaleString('en-US')}-member group p50`, listed.p50 / 1000, 'ms');
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
