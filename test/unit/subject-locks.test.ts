// The per-subject locks on their own: a key is handed to its waiters in arrival order, a waiter that
// gives up at its deadline leaves the queue without taking the key from the one after it, and no
// entry outlives its last holder.
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { LockWaitExpired, SubjectLocks } from '../../src/lifecycle/subject-locks.js';

const LATER = () => Date.now() + 60_000;

describe('SubjectLocks', () => {
  it('hands a key over in arrival order, past a waiter that gave up, and frees it after the last', async () => {
    const locks = new SubjectLocks();
    const order: string[] = [];
    const unlockFirst = await locks.acquire(['entity:a'], LATER());
    const gaveUp = locks.acquire(['entity:a'], Date.now() - 1);
    const second = locks.acquire(['entity:a', 'entity:a'], LATER()).then((unlock) => (order.push('second'), unlock));
    const third = locks.acquire(['entity:a'], LATER()).then((unlock) => (order.push('third'), unlock));
    await assert.rejects(gaveUp, LockWaitExpired);
    await turn();
    assert.deepEqual(order, [], 'nobody takes a held key');
    unlockFirst();
    unlockFirst();
    const unlockSecond = await second;
    await turn();
    assert.deepEqual(order, ['second'], 'one holder at a time, even when the first one unlocks twice');
    unlockSecond();
    (await third)();
    assert.deepEqual(order, ['second', 'third']);
    assert.equal(locks.size, 0, 'no entry outlives its last holder');
  });

  it('takes several keys in sorted order and gives back those it holds when one is not free in time', async () => {
    const locks = new SubjectLocks();
    const unlockB = await locks.acquire(['entity:b'], LATER());
    await assert.rejects(locks.acquire(['entity:b', 'entity:a'], Date.now() - 1), LockWaitExpired);
    const unlockA = await locks.acquire(['entity:a'], Date.now() - 1);
    unlockA();
    unlockB();
    assert.equal(locks.size, 0);
  });
});
