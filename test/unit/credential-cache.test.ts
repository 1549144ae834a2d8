// The forward-auth credentials cache on a real store: a verification is reused while nothing of
// the entity changed (an unrelated commit included), redone at once after a lock, secret change,
// capability or group change or destroy, after the TTL, and after `forget`; concurrent checks share
// one verification; a result that raced a secret change is not kept; and no secret is held.
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { after, before, beforeEach, describe, it } from 'node:test';
import { CredentialCache } from '../../src/api/credential-cache.js';
import { loadAccessProfile } from '../../src/identity/access-profile.js';
import { Identity } from '../../src/identity/identity.js';
import { NO_PLUGINS } from '../../src/lifecycle/dispatcher.js';
import { LifecycleEngine } from '../../src/lifecycle/engine.js';
import type { Store } from '../../src/store/store.js';
import { FAST_HASH, INFO, rejectsWith } from '../support/identity-harness.js';
import { forEachStore } from '../support/stores.js';

forEachStore((_kind, openStore) => {
  const SECRET = 'Quiet-Lantern-Secret-3';
  const TTL_MS = 30_000;

  let store: Store;
  let identity: Identity;
  let now = 0;
  let cache: CredentialCache;
  /** How many verifications (AuthCheck + profile) ran. */
  let verified = 0;

  const verify = (id: string, secret: string) => async () => {
    verified++;
    await identity.authCheck(INFO, id, secret);
    return loadAccessProfile(store.reader, id);
  };
  const check = (id: string, secret = SECRET) => cache.check(id, secret, verify(id, secret));
  let counter = 0;
  const fresh = async (prefix: string) => {
    const id = `${prefix}-${++counter}`;
    await identity.createEntity(INFO, { id, secret: SECRET });
    return id;
  };

  before(async () => {
    store = await openStore();
    identity = new Identity(store, new LifecycleEngine(store, NO_PLUGINS), { hash: FAST_HASH });
  });

  after(() => store.close());

  beforeEach(() => {
    cache = new CredentialCache(store, { ttlMs: TTL_MS, maxEntries: 100 }, () => now);
    verified = 0;
  });

  describe('CredentialCache', () => {
    it('verifies once, then answers from the cache, also after an unrelated commit', async () => {
      const id = await fresh('alice');
      assert.deepEqual(await check(id).then((r) => [r.cached, r.profile?.id]), [false, id]);
      assert.equal((await check(id)).cached, true);
      await fresh('someone-else');
      assert.equal((await check(id)).cached, true, 'a commit about another entity does not end the entry');
      assert.equal(verified, 1);
    });

    it('never keeps a refusal, and keeps each secret apart', async () => {
      const id = await fresh('bob');
      await rejectsWith(check(id, 'wrong'), 'KH_ERR_AUTH_FAILED');
      await rejectsWith(check(id, 'wrong'), 'KH_ERR_AUTH_FAILED');
      assert.equal(verified, 2);
      assert.equal((await check(id)).cached, false);
    });

    const changes: [string, (id: string) => Promise<unknown>][] = [
      ['a lock', (id) => identity.lockEntity(INFO, id)],
      ['a secret change', (id) => identity.setSecret(INFO, id, 'Another-Quiet-Secret-4')],
      ['a capability gained', (id) => identity.entityCapabilities(INFO, id, { action: 'add', value: 'LOCK_ENTITY' })],
      ['a group joined', async (id) => (await identity.createGroup(INFO, { name: `g-${id}` }), identity.addMember(INFO, `g-${id}`, id))],
      ['a destroy', (id) => identity.destroyEntity(INFO, id)],
    ];
    for (const [what, change] of changes) {
      it(`verifies again at once after ${what}`, async () => {
        const id = await fresh('carol');
        await check(id);
        await change(id);
        const again = await check(id).catch((err: unknown) => err);
        assert.equal(verified, 2, 'the entry was dropped and the credentials checked again');
        if (what === 'a capability gained' || what === 'a group joined') assert.equal((again as { cached: boolean }).cached, false);
      });
    }

    it('verifies again once the TTL is over, with no commit at all', async () => {
      const id = await fresh('dave');
      await check(id);
      now += TTL_MS - 1;
      assert.equal((await check(id)).cached, true);
      now += 1;
      assert.equal((await check(id)).cached, false);
      assert.equal(verified, 2);
    });

    it("forget drops an id's entries (a refused attempt on it)", async () => {
      const id = await fresh('erin');
      await check(id);
      cache.forget(id);
      assert.equal((await check(id)).cached, false);
    });

    it('concurrent checks of the same credentials share one verification', async () => {
      const id = await fresh('fay');
      const results = await Promise.all(Array.from({ length: 8 }, () => check(id)));
      assert.equal(verified, 1);
      assert.deepEqual(results.map((r) => r.cached).sort(), [false, ...Array(7).fill(true)]);
    });

    it('does not keep a verification that raced a secret change', async () => {
      const id = await fresh('gus');
      await cache.check(id, SECRET, async () => {
        const profile = await verify(id, SECRET)();
        await identity.setSecret(INFO, id, 'Gus-Changed-Secret-5');
        return profile === null ? null : { ...profile, generation: (await store.reader.tokenGeneration(id))! };
      });
      assert.equal(cache.size, 0);
    });

    it('holds at most maxEntries, dropping the oldest', async () => {
      cache = new CredentialCache(store, { ttlMs: TTL_MS, maxEntries: 2 }, () => now);
      const ids = [await fresh('h'), await fresh('h'), await fresh('h')];
      for (const id of ids) await check(id);
      assert.equal(cache.size, 2);
      assert.equal((await check(ids[2]!)).cached, true);
      assert.equal((await check(ids[0]!)).cached, false);
    });

    it('with a TTL of 0, verifies every time', async () => {
      cache = new CredentialCache(store, { ttlMs: 0, maxEntries: 100 }, () => now);
      const id = await fresh('ivy');
      for (let i = 0; i < 3; i++) assert.equal((await check(id)).cached, false);
      assert.equal(verified, 3);
      assert.equal(cache.enabled, false);
    });

    it('holds no secret, only keyed hashes', async () => {
      const id = await fresh('jay');
      await check(id);
      assert.equal(cache.size, 1);
      assert.doesNotMatch(inspect(cache, { depth: 10, showHidden: true }), new RegExp(SECRET));
    });
  });
});
