// The store's delivery leases (DeliveryLeaseStore), on both stores: taken when free, renewed by
// their owner, refused to another owner until they expire, then taken over; given up by the owner
// only. Two stores opened on one database play two servers: when both try to take a free lease at
// once, exactly one gets it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Store } from '../../src/store/store.js';
import { forEachStore, newStoreSite, type StoreSite } from '../support/stores.js';

/** Free leases the two servers race for. */
const RACES = 20;

forEachStore((kind) => {
  describe('delivery leases in the store', () => {
    let site: StoreSite;
    let store: Store;
    let other: Store;
    before(async () => {
      site = await newStoreSite(kind);
      store = await site.open();
      other = await site.open();
    });
    after(async () => {
      await store.close();
      await other.close();
      site.remove();
    });

    it('one owner at a time per plugin; renewal by the owner; takeover only after expiry; release by the owner only', async () => {
      assert.equal(await store.leases.acquire('audit', 'a', 60_000), true);
      assert.equal(await store.leases.acquire('audit', 'b', 60_000), false, 'held by a');
      assert.equal(await store.leases.acquire('audit', 'a', 60_000), true, 'renewed by a');
      assert.equal(await store.leases.acquire('webhook', 'b', 60_000), true, 'another plugin is free');
      await store.leases.release('audit', 'b');
      assert.equal(await store.leases.acquire('audit', 'b', 60_000), false, 'b cannot give up what a holds');

      // A short lease that a stops renewing: b takes it once it expired (the store's clock; bounded wait).
      assert.equal(await store.leases.acquire('short', 'a', 30), true);
      let takenOver = false;
      for (let i = 0; i < 200 && !takenOver; i++) {
        takenOver = await store.leases.acquire('short', 'b', 60_000);
        if (!takenOver) await new Promise((resolve) => setTimeout(resolve, 5));
      }
      assert.ok(takenOver, 'b takes over an expired lease');
      assert.equal(await store.leases.acquire('short', 'a', 60_000), false, 'a lost it');

      await store.leases.release('audit', 'a');
      assert.equal(await store.leases.acquire('audit', 'b', 60_000), true, 'free at once after a release');
      assert.deepEqual(
        (await store.leases.all()).map((l) => [l.plugin, l.owner]),
        [
          ['audit', 'b'],
          ['short', 'b'],
          ['webhook', 'b'],
        ],
      );
    });

    it('two servers taking one free lease at the same time: exactly one gets it, and the other server sees it held', async () => {
      for (let i = 0; i < RACES; i++) {
        const plugin = `race-${i}`;
        const [byA, byB] = await Promise.all([
          store.leases.acquire(plugin, 'server-a', 60_000),
          other.leases.acquire(plugin, 'server-b', 60_000),
        ]);
        assert.equal(Number(byA) + Number(byB), 1, `${plugin}: exactly one owner (a: ${byA}, b: ${byB})`);
        const holder = (await other.leases.all()).find((l) => l.plugin === plugin);
        assert.equal(holder?.owner, byA ? 'server-a' : 'server-b');
        assert.equal(await other.leases.acquire(plugin, byA ? 'server-b' : 'server-a', 60_000), false, 'the loser cannot take it after');
      }
    });
  });
});
