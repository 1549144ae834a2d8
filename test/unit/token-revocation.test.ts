// The per-request revocation check and its cache: unchanged data is read once, and any commit
// through the store (this connection's writer or another connection, as another process would)
// makes the very next check read again and see the change. Plus the store's token generations. On both stores.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseEntity, type Capability } from 'keyhold-plugin-sdk';
import { TokenRevocation } from '../../src/api/revocation.js';
import type { TokenClaims } from '../../src/api/tokens.js';
import { Identity } from '../../src/identity/identity.js';
import { NO_PLUGINS } from '../../src/lifecycle/dispatcher.js';
import { LifecycleEngine } from '../../src/lifecycle/engine.js';
import { FAST_HASH, INFO, rejectsWith } from '../support/identity-harness.js';
import { forEachStore, newStoreSite, type StoreSite } from '../support/stores.js';
import type { Store } from '../../src/store/store.js';

forEachStore((kind) => {
  let site: StoreSite;
  let store: Store;
  let identity: Identity;
  /** How often the check read an entity's capabilities: once per cache miss. */
  let loads = 0;
  let revocation: TokenRevocation;

  async function claimsOf(id: string, caps: Capability[]): Promise<TokenClaims> {
    const now = Math.floor(Date.now() / 1000);
    return { sub: id, caps, gen: (await store.reader.tokenGeneration(id))!, iat: now, exp: now + 600 };
  }

  before(async () => {
    site = await newStoreSite(kind);
    store = await site.open();
    identity = new Identity(store, new LifecycleEngine(store, NO_PLUGINS), { hash: FAST_HASH });
    revocation = new TokenRevocation(store, (id) => {
      loads++;
      return identity.effectiveCapabilities(id);
    });
  });

  after(async () => {
    await store.close();
    site.remove();
  });

  describe('TokenRevocation', () => {
    it('reads an unchanged entity once, and again after any commit, seeing the change', async () => {
      await identity.createEntity(INFO, { id: 'alice', capabilities: ['CREATE_GROUP'] });
      const claims = await claimsOf('alice', ['CREATE_GROUP']);
      const before = loads;
      for (let i = 0; i < 5; i++) await revocation.check(claims);
      assert.equal(loads - before, 1, 'cached while nothing is committed');

      await identity.entityCapabilities(INFO, 'alice', { action: 'remove', value: 'CREATE_GROUP' });
      await rejectsWith(revocation.check(claims), 'KH_ERR_TOKEN_REVOKED');
      assert.equal(loads - before, 2, 'the commit dropped the cache');
    });

    it('sees a commit made by another connection to the same database', async () => {
      await identity.createEntity(INFO, { id: 'bob' });
      const claims = await claimsOf('bob', []);
      const before = loads;
      await revocation.check(claims);
      await revocation.check(claims);
      assert.equal(loads - before, 1, 'cached');
      // Another process (SQLite) or server (PostgreSQL) on the same data.
      const other = await site.open();
      try {
        await other.write((tx) => tx.renewTokenGeneration('bob'));
      } finally {
        await other.close();
      }
      await rejectsWith(revocation.check(claims), 'KH_ERR_TOKEN_REVOKED');
    });

    it('refuses a locked entity and one that no longer exists', async () => {
      await identity.createEntity(INFO, { id: 'carol' });
      await identity.createEntity(INFO, { id: 'dave' });
      const carol = await claimsOf('carol', []);
      const dave = await claimsOf('dave', []);
      await revocation.check(carol);
      await revocation.check(dave);
      await store.write(async (tx) => {
        const entity = (await tx.getEntity('carol'))!;
        // The flag alone, without the generation a lock replaces: the check refuses it by itself.
        await tx.updateEntity({ ...entity, meta: { ...entity.meta, locked: true } });
      });
      await identity.destroyEntity(INFO, 'dave');
      await rejectsWith(revocation.check(carol), 'KH_ERR_TOKEN_REVOKED');
      await rejectsWith(revocation.check(dave), 'KH_ERR_TOKEN_REVOKED');
    });

    it('revokes every token of the entity on revokeAll', async () => {
      await identity.createEntity(INFO, { id: 'erin' });
      const claims = await claimsOf('erin', []);
      await revocation.check(claims);
      await revocation.revokeAll('erin');
      await rejectsWith(revocation.check(claims), 'KH_ERR_TOKEN_REVOKED');
      await revocation.check(await claimsOf('erin', []));
    });
  });

  describe('store token generations', () => {
    it('gives every created entity a new generation, and none after it is deleted', async () => {
      const entity = parseEntity({ id: 'frank', number: 4242 });
      await store.write((tx) => tx.insertEntity(entity));
      const first = await store.reader.tokenGeneration('frank');
      assert.match(first ?? '', /^[0-9a-f]{32}$/);
      await store.write((tx) => tx.deleteEntity('frank'));
      assert.equal(await store.reader.tokenGeneration('frank'), undefined);
      await store.write((tx) => tx.insertEntity(entity));
      const second = await store.reader.tokenGeneration('frank');
      assert.ok(second && second !== first, 'the same id and number get a new generation');
    });

    it('changes the change counter on every commit and not otherwise', async () => {
      const start = await store.changeCounter();
      assert.equal(await store.changeCounter(), start);
      await store.reader.getEntity('frank');
      assert.equal(await store.changeCounter(), start, 'a read is no commit');
      await store.write((tx) => tx.renewTokenGeneration('frank'));
      assert.notEqual(await store.changeCounter(), start);
    });
  });
});
