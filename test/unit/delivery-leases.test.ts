// The store's delivery leases (DeliveryLeaseStore) on SQLite: taken when free, renewed by their
// owner, refused to another owner until they expire, then taken over; given up by the owner only.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { scratchDir } from '../support/keyhold.js';

const store = SqliteStore.open(join(scratchDir('leases'), 'keyhold.sqlite'));
after(() => store.close());

describe('delivery leases in the store', () => {
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
});
