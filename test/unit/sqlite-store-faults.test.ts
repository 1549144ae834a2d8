// The store meets its surroundings: a lock another process holds is waited for without blocking
// the event loop and then refused as KH_ERR_STORE_BUSY; a full disk is KH_ERR_STORE_FULL; health
// says so while it lasts; nothing is written by a refused write.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { parseEntity } from 'keyhold-plugin-sdk';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { rejectsWith } from '../support/identity-harness.js';
import { fillDisk, holdDatabaseLock } from '../support/store-faults.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'keyhold-store-faults-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const entity = (id: string, displayName = '') => parseEntity({ id, meta: { displayName } });

/** True when `promise` is still pending after the event loop has turned `turns` times: nothing blocked it meanwhile. */
async function pendingWhileLoopTurns<T>(promise: Promise<T>, turns: number): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < turns; i++) await tick();
  return !settled;
}

describe('SqliteStore: a lock held by another process', () => {
  it('waits without blocking the event loop, then refuses with KH_ERR_STORE_BUSY; nothing is written', async () => {
    const file = join(dir, 'busy.sqlite');
    // Long enough that 20 turns of a loaded machine's event loop fit in it: the check is that they happen at all.
    const store = SqliteStore.open(file, { busyTimeoutMs: 2000 });
    const lock = holdDatabaseLock(file);
    try {
      const write = store.write((tx) => tx.insertEntity(entity('blocked')));
      assert.ok(await pendingWhileLoopTurns(write, 20), 'the event loop turned while the write waited for the lock');
      assert.deepEqual(await store.health(), {
        reads: 'ok',
        writes: 'busy',
        problem: 'another process holds the database lock',
        queuedWrites: 1,
      });
      const err = await rejectsWith(write, 'KH_ERR_STORE_BUSY', /locked by another process \(waited 2000 ms/);
      assert.equal(err.details?.retryAfterSeconds, 1);
    } finally {
      lock.release();
    }
    assert.equal(await store.reader.getEntity('blocked'), undefined);
    assert.deepEqual(await store.health(), { reads: 'ok', writes: 'ok', queuedWrites: 0 });
    await store.write((tx) => tx.insertEntity(entity('after')));
    await store.close();
  });

  it('goes ahead when the lock is released before the deadline', async () => {
    const file = join(dir, 'released.sqlite');
    const store = SqliteStore.open(file, { busyTimeoutMs: 30_000 });
    const lock = holdDatabaseLock(file);
    const write = store.write((tx) => tx.insertEntity(entity('waited')));
    assert.ok(await pendingWhileLoopTurns(write, 5));
    lock.release();
    assert.equal((await write).id, 'waited');
    await store.close();
  });

  it('answers reads while another process holds the write lock (WAL)', async () => {
    const file = join(dir, 'reads.sqlite');
    const store = SqliteStore.open(file, { busyTimeoutMs: 200 });
    await store.write((tx) => tx.insertEntity(entity('present')));
    const lock = holdDatabaseLock(file);
    try {
      assert.equal((await store.reader.getEntity('present'))?.id, 'present');
    } finally {
      lock.release();
    }
    await store.close();
  });
});

describe('SqliteStore: a full disk', () => {
  it('refuses a write with KH_ERR_STORE_FULL, writes nothing, and health says full until a write succeeds', async () => {
    const store = SqliteStore.open(':memory:');
    const full = fillDisk(store);
    let refused: unknown;
    // Bounded: each entity is a few KB, so new pages are needed within a few inserts.
    for (let i = 0; i < 100 && refused === undefined; i++) {
      await store.write((tx) => tx.insertEntity(entity(`filler-${i}`, 'x'.repeat(3000)))).catch((err: unknown) => (refused = err));
    }
    await rejectsWith(Promise.reject(refused), 'KH_ERR_STORE_FULL', /disk holding the database is full: nothing was written/);
    const health = await store.health();
    assert.equal(health.writes, 'full');
    assert.match(health.problem ?? '', /^the last write failed: the disk holding the database is full/);
    const count = await store.reader.countEntities();
    full.undo();
    assert.deepEqual(
      await store.health(),
      { reads: 'ok', writes: 'full', problem: health.problem, queuedWrites: 0 },
      'remembered until a write succeeds',
    );
    await store.write((tx) => tx.insertEntity(entity('room-again')));
    assert.equal(await store.reader.countEntities(), count + 1);
    assert.equal((await store.health()).writes, 'ok');
    await store.close();
  });
});
