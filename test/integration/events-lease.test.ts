// The committed-event delivery lease: of two servers (two Outbox instances with their own owner
// ids) on one store, only the lease holder delivers a plugin's events; when the holder dies (its
// renewals stop reaching the store) the other takes over once the lease expired and resumes from
// the plugin's cursor; a clean stop hands the lease over at once. No event is delivered twice here:
// the subscribers take each event at once, so no delivery is in flight when the lease passes (the
// one case where the next holder delivers an event again, docs/plugins.md). On both stores, each
// server with a store of its own opened on one database.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Outbox } from '../../src/events/outbox.js';
import type { OutboxSettings } from '../../src/events/settings.js';
import type { Store } from '../../src/store/store.js';
import { TestSubscriber } from '../support/event-subscriber.js';
import { forEachStore, newStoreSite } from '../support/stores.js';

/** Short, so that a takeover after expiry comes soon; renewals well within the lease. */
const SETTINGS: OutboxSettings = {
  retentionMs: 60_000,
  maxAttempts: 3,
  retryInitialDelayMs: 1,
  retryMaxDelayMs: 5,
  leaseTtlMs: 800,
  leaseRenewMs: 100,
};

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** A server's view of the store whose lease renewals can be cut off (the server died or lost the database). */
function cuttable(store: Store): { store: Store; cut(): void; restore(): void } {
  let cut = false;
  const leases: Store['leases'] = {
    acquire: (plugin, owner, ttlMs) => (cut ? Promise.reject(new Error('connection lost')) : store.leases.acquire(plugin, owner, ttlMs)),
    release: (plugin, owner) => store.leases.release(plugin, owner),
    all: () => store.leases.all(),
  };
  const view = Object.create(store, { leases: { value: leases } }) as Store;
  return { store: view, cut: () => (cut = true), restore: () => (cut = false) };
}

async function server(store: Store, owner: string, subscriber: TestSubscriber): Promise<Outbox> {
  const outbox = new Outbox({ store, settings: SETTINGS, logger: pino({ level: 'silent' }), registry: new Registry(), owner });
  closers.push(() => outbox.stop());
  await outbox.use([subscriber]);
  return outbox;
}

/** Appends `count` events (one write each) and wakes both servers. */
async function commit(store: Store, count: number, outboxes: Outbox[]): Promise<void> {
  for (let i = 0; i < count; i++) {
    await store.write((tx) =>
      tx.outbox.append({
        point: 'EntityUpdate',
        operation: 'entity.update-meta',
        subjectKind: 'entity',
        subjectKey: `e${i}`,
        before: null,
        after: null,
        request: {},
        requestId: `r${i}`,
        caller: 'root',
        at: new Date().toISOString(),
      }),
    );
  }
  for (const outbox of outboxes) outbox.wake();
}

function seqs(...subscribers: TestSubscriber[]): number[] {
  return subscribers.flatMap((s) => s.delivered.map((e) => e.seq)).sort((a, b) => a - b);
}

/** Polls `done` (every 20 ms, at most 10 s): the lease passes on the store's clock, not on an event the test could wait for. */
async function until(what: string, done: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await done()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`${what}: not within 10 s`);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

forEachStore((kind) => {
  describe('committed-event delivery lease', () => {
    it('one server delivers per plugin; another takes over after the holder dies, from the cursor; a clean stop hands over at once', async () => {
      const site = await newStoreSite(kind);
      closers.push(async () => site.remove());
      const [store, storeOfA] = [await site.open(), await site.open()];
      closers.push(
        () => store.close(),
        () => storeOfA.close(),
      );
      const a = cuttable(storeOfA);
      const atA = new TestSubscriber('audit');
      const atB = new TestSubscriber('audit');
      const serverA = await server(a.store, 'server-a', atA);
      await commit(store, 5, [serverA]);
      await atA.untilDelivered(5);

      const serverB = await server(store, 'server-b', atB);
      await commit(store, 5, [serverA, serverB]);
      await atA.untilDelivered(10);
      assert.deepEqual(seqs(atA), range(1, 10));
      assert.equal(atB.delivered.length, 0, 'server B delivered although server A holds the lease');
      const [statusAtB] = await serverB.status();
      assert.deepEqual([statusAtB!.leaseOwner, statusAtB!.leaseHeld], ['server-a', false]);
      // B shows the delivery A makes: the cursor A writes to the store, nothing pending.
      await until('server B shows the cursor server A wrote', async () => (await serverB.status())[0]!.cursor === 10);
      assert.equal((await serverB.status())[0]!.pending, 0);

      // A dies: its renewals no longer reach the store. It may still deliver while its last renewal lasts;
      // B takes over once the lease expired, and delivers what A had not.
      a.cut();
      await commit(store, 5, [serverA, serverB]);
      await until('server B holds the lease', async () => (await serverB.status())[0]!.leaseHeld);
      await commit(store, 3, [serverA, serverB]);
      await until('events 1 to 18 delivered', async () => seqs(atA, atB).length >= 18);
      assert.deepEqual(seqs(atA, atB), range(1, 18), `every event once, none twice: A ${seqs(atA)}, B ${seqs(atB)}`);
      assert.deepEqual(seqs(atB).slice(-3), [16, 17, 18]);
      const [afterTakeover] = await serverB.status();
      assert.deepEqual([afterTakeover!.leaseOwner, afterTakeover!.leaseHeld], ['server-b', true]);
      assert.equal((await serverA.status())[0]!.leaseHeld, false);

      // A comes back; B stops cleanly (cursor written, lease given up): A takes over at once and resumes from B's cursor.
      a.restore();
      await serverB.stop();
      await commit(store, 2, [serverA]);
      await until('server A delivers again', async () => seqs(atA, atB).length >= 20);
      assert.deepEqual(seqs(atA, atB), range(1, 20));
      assert.deepEqual(
        (await store.leases.all()).map((l) => [l.plugin, l.owner]),
        [['audit', 'server-a']],
      );
    });
  });
});
