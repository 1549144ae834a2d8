// AuthCheck's refusals cost the same work: every one (unknown id, a PRE hook's veto, locked, wrong
// secret) and a success verify the secret exactly once, before any hook runs, so that the time of
// an answer does not tell which refusal it was. Counted at the argon2 slots every verify goes through.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Entity } from 'keyhold-plugin-sdk';
import { HashSlots, type HashOperation } from '../../src/identity/hash-slots.js';
import { Identity } from '../../src/identity/identity.js';
import { LifecycleEngine } from '../../src/lifecycle/engine.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { FAST_HASH, INFO, rejectsWith, TestDispatcher, veto } from '../support/identity-harness.js';

/** HashSlots that count the verifies they run. */
class CountingSlots extends HashSlots {
  verifies = 0;

  override run<T>(operation: HashOperation, task: () => Promise<T>): Promise<T> {
    if (operation === 'verify') this.verifies++;
    return super.run(operation, task);
  }
}

describe('AuthCheck cost', () => {
  it('verifies the secret once for every answer, before the hooks: unknown, vetoed, locked, wrong, right', async (t) => {
    const store = SqliteStore.open(':memory:');
    t.after(() => store.close());
    const slots = new CountingSlots();
    const dispatcher = new TestDispatcher([
      {
        name: 'gate',
        hooks: {
          preAuthCheck: (p) => ((p.subject as Entity).id === 'vetoed' ? veto('no')(p) : { subject: p.subject, state: p.context.state }),
        },
      },
    ]);
    const identity = new Identity(store, new LifecycleEngine(store, dispatcher), { hash: FAST_HASH, slots });
    for (const id of ['vetoed', 'locked', 'alice']) await identity.createEntity(INFO, { id, secret: 'pw' });
    await identity.lockEntity(INFO, 'locked');
    const attempts: [string, string][] = [
      ['nobody', 'pw'],
      ['vetoed', 'pw'],
      ['locked', 'pw'],
      ['alice', 'wrong'],
    ];
    for (const [id, secret] of attempts) {
      const before = slots.verifies;
      await rejectsWith(identity.authCheck(INFO, id, secret), 'KH_ERR_AUTH_FAILED');
      assert.equal(slots.verifies - before, 1, `${id}: one verify`);
    }
    const before = slots.verifies;
    await identity.authCheck(INFO, 'alice', 'pw');
    assert.equal(slots.verifies - before, 1, 'a success: one verify');
  });
});
