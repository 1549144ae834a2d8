import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Identity } from '../../src/identity/identity.js';
import type { KeyholdError } from '../../src/errors.js';
import type { AuthFailed } from '../../src/identity/auth-failure.js';
import { hashSecret } from '../../src/identity/secrets.js';
import { NO_PLUGINS } from '../../src/lifecycle/dispatcher.js';
import { LifecycleEngine } from '../../src/lifecycle/engine.js';
import { FAST_HASH, INFO, openHarness, rejectsWith, type Harness } from '../support/identity-harness.js';
import { forEachStore } from '../support/stores.js';

forEachStore((_kind, openStore) => {
  describe('identity: entities', () => {
    let h: Harness;
    before(async () => {
      h = openHarness(undefined, await openStore());
    });
    after(() => h.close());

    it('creates with the next free number and the given metadata, never returning the secret hash', async () => {
      const alice = await h.identity.createEntity(INFO, {
        id: 'alice',
        secret: 's3cret',
        meta: { displayName: 'Alice', shell: '/bin/sh' },
      });
      const bob = await h.identity.createEntity(INFO, { id: 'bob', number: 1000 });
      const carol = await h.identity.createEntity(INFO, { id: 'carol' });
      assert.equal(alice.number, 1);
      assert.equal(bob.number, 1000);
      assert.equal(carol.number, 1001);
      assert.equal(alice.secret, '');
      assert.equal(alice.meta.displayName, 'Alice');
      assert.deepEqual(await h.identity.entityInfo('alice'), alice);
      assert.match((await h.store.reader.secretHash('alice'))!, /^\$argon2id\$/);
      assert.equal(await h.store.reader.secretHash('bob'), '');
    });

    it('searches without secret hashes', async () => {
      const found = await h.identity.searchEntities({ text: 'ALI' });
      assert.deepEqual(
        found.map((e) => [e.id, e.secret]),
        [['alice', '']],
      );
    });

    it('updates typed metadata, leaving other fields', async () => {
      const updated = await h.identity.updateEntityMeta(INFO, 'alice', { legalName: 'Alice Liddell', gecos: 'A,,,' });
      assert.equal(updated.meta.legalName, 'Alice Liddell');
      assert.equal(updated.meta.displayName, 'Alice');
      assert.deepEqual(await h.identity.entityInfo('alice'), updated);
    });

    it('upserts and clears untyped metadata exactly and fuzzily', async () => {
      await h.identity.entityUntypedMeta(INFO, 'alice', { action: 'upsert', key: 'team', value: 'red' });
      await h.identity.entityUntypedMeta(INFO, 'alice', { action: 'upsert', key: 'fail2lock', value: 'RESET' });
      await h.identity.entityUntypedMeta(INFO, 'alice', { action: 'upsert', key: 'fail2lock{ssh}', value: '3' });
      let e = await h.identity.entityUntypedMeta(INFO, 'alice', { action: 'upsert', key: 'team', value: 'blue' });
      assert.deepEqual(e.meta.untypedMeta, ['team:blue', 'fail2lock:RESET', 'fail2lock{ssh}:3']);
      e = await h.identity.entityUntypedMeta(INFO, 'alice', { action: 'clear-exact', key: 'fail2lock' });
      assert.deepEqual(e.meta.untypedMeta, ['team:blue', 'fail2lock{ssh}:3']);
      e = await h.identity.entityUntypedMeta(INFO, 'alice', { action: 'clear-fuzzy', key: 'fail2' });
      assert.deepEqual((await h.identity.entityInfo('alice')).meta.untypedMeta, ['team:blue']);
    });

    it('adds, gets, replaces and deletes kv keys', async () => {
      await h.identity.entityKv(INFO, 'alice', { action: 'add', key: 'phone', values: ['1', '2'] });
      assert.deepEqual(await h.identity.entityKvGet('alice', 'phone'), { values: ['1', '2'] });
      await h.identity.entityKv(INFO, 'alice', { action: 'replace', key: 'phone', values: ['3'] });
      assert.deepEqual(await h.identity.entityKvGet('alice', 'phone'), { values: ['3'] });
      const e = await h.identity.entityKv(INFO, 'alice', { action: 'delete', key: 'phone' });
      assert.deepEqual(e.meta.kv, {});
      await rejectsWith(h.identity.entityKvGet('alice', 'phone'), 'KH_ERR_KV_KEY_NOT_FOUND');
    });

    it('adds and removes keys and capabilities idempotently', async () => {
      const key = 'ssh-ed25519 AAAAC3Nz alice@laptop';
      await h.identity.entityKeys(INFO, 'alice', { action: 'add', value: key });
      let e = await h.identity.entityKeys(INFO, 'alice', { action: 'add', value: key });
      assert.deepEqual(e.meta.keys, [key]);
      e = await h.identity.entityKeys(INFO, 'alice', { action: 'remove', value: key });
      assert.deepEqual(e.meta.keys, []);
      await h.identity.entityCapabilities(INFO, 'alice', { action: 'add', value: 'LOCK_ENTITY' });
      e = await h.identity.entityCapabilities(INFO, 'alice', { action: 'add', value: 'CREATE_GROUP' });
      assert.deepEqual(e.meta.capabilities, ['LOCK_ENTITY', 'CREATE_GROUP']);
      e = await h.identity.entityCapabilities(INFO, 'alice', { action: 'remove', value: 'LOCK_ENTITY' });
      assert.deepEqual((await h.identity.entityInfo('alice')).meta.capabilities, ['CREATE_GROUP']);
    });

    it('checks secrets: right, wrong, unknown entity and no secret set', async () => {
      const ok = await h.identity.authCheck(INFO, 'alice', 's3cret');
      assert.equal(ok.id, 'alice');
      assert.equal(ok.secret, '');
      const wrong = await rejectsWith(h.identity.authCheck(INFO, 'alice', 'nope'), 'KH_ERR_AUTH_FAILED');
      const unknown = await rejectsWith(h.identity.authCheck(INFO, 'nobody', 's3cret'), 'KH_ERR_AUTH_FAILED');
      assert.equal(unknown.message, wrong.message);
      await rejectsWith(h.identity.authCheck(INFO, 'bob', ''), 'KH_ERR_AUTH_FAILED');
    });

    it('sets a secret: the new one works, the old one no longer', async () => {
      await h.identity.setSecret(INFO, 'alice', 'n3w secret');
      await h.identity.authCheck(INFO, 'alice', 'n3w secret');
      await rejectsWith(h.identity.authCheck(INFO, 'alice', 's3cret'), 'KH_ERR_AUTH_FAILED');
      await h.identity.setSecret(INFO, 'bob', 'bobs');
      await h.identity.authCheck(INFO, 'bob', 'bobs');
    });

    it('locks and unlocks; a locked entity cannot authenticate even with the right secret, and is told so like a wrong secret', async () => {
      assert.equal((await h.identity.lockEntity(INFO, 'alice')).meta.locked, true);
      const locked = await rejectsWith(h.identity.authCheck(INFO, 'alice', 'n3w secret'), 'KH_ERR_AUTH_FAILED');
      const unknown = await rejectsWith(h.identity.authCheck(INFO, 'nobody', 'n3w secret'), 'KH_ERR_AUTH_FAILED');
      assert.deepEqual(locked.toJSON(), unknown.toJSON());
      assert.deepEqual([(locked as AuthFailed).reason, (unknown as AuthFailed).reason], ['locked', 'unknown']);
      assert.equal((await h.identity.unlockEntity(INFO, 'alice')).meta.locked, false);
      await h.identity.authCheck(INFO, 'alice', 'n3w secret');
    });

    it('destroys an entity with its memberships', async () => {
      await h.identity.createGroup(INFO, { name: 'doomed-members' });
      await h.identity.addMember(INFO, 'doomed-members', 'carol');
      await h.identity.destroyEntity(INFO, 'carol');
      await rejectsWith(h.identity.entityInfo('carol'), 'KH_ERR_ENTITY_NOT_FOUND');
      assert.deepEqual(await h.identity.groupMembers('doomed-members'), []);
    });
  });

  describe('identity: secrets at OWASP cost', () => {
    it('an unknown entity and a wrong secret get the same answer', async () => {
      // The time each takes is compared by the secrets benchmark (bench/), not here: tests assert no timings.
      const h = openHarness(undefined, await openStore());
      try {
        await h.identity.createEntity(INFO, { id: 'timed', secret: 'right' });
        const answer = (attempt: Promise<unknown>) =>
          attempt.then(
            () => assert.fail('accepted'),
            (err: KeyholdError) => ({ code: err.code, message: err.message }),
          );
        const wrong = await answer(h.identity.authCheck(INFO, 'timed', 'wrong'));
        const unknown = await answer(h.identity.authCheck(INFO, 'nobody', 'wrong'));
        assert.equal(wrong.code, 'KH_ERR_AUTH_FAILED');
        assert.deepEqual(unknown, wrong);
      } finally {
        await h.close();
      }
    });

    it('rehashes a secret stored with weaker parameters on the next successful check', async () => {
      const h = openHarness(undefined, await openStore());
      try {
        await h.identity.createEntity(INFO, { id: 'old-hash', secret: 'pw' });
        assert.match((await h.store.reader.secretHash('old-hash'))!, /m=1024,p=1,t=1/);
        const raised = new Identity(h.store, new LifecycleEngine(h.store, NO_PLUGINS), { hash: { ...FAST_HASH, timeCost: 2 } });
        await raised.authCheck(INFO, 'old-hash', 'pw');
        const stored = (await h.store.reader.secretHash('old-hash'))!;
        assert.match(stored, /m=1024,p=1,t=2/);
        await raised.authCheck(INFO, 'old-hash', 'pw');
        assert.equal(await h.store.reader.secretHash('old-hash'), stored, 'a current hash is not rewritten');
        assert.notEqual(stored, await hashSecret('pw', FAST_HASH));
      } finally {
        await h.close();
      }
    });
  });

  describe('identity: groups, memberships and expansions', () => {
    let h: Harness;
    before(async () => {
      h = openHarness(undefined, await openStore());
      // Another holder of GLOBAL_ROOT, so that ann may leave the admins group (no change may leave no root).
      await h.identity.createEntity(INFO, { id: 'root', capabilities: ['GLOBAL_ROOT'] });
      for (const id of ['ann', 'ben', 'cy', 'dee']) await h.identity.createEntity(INFO, { id });
    });
    after(() => h.close());

    it('creates groups with capabilities, expansions and a manager, numbered automatically', async () => {
      const admins = await h.identity.createGroup(INFO, { name: 'admins', displayName: 'Admins', capabilities: ['GLOBAL_ROOT'] });
      assert.equal(admins.number, 1);
      await h.identity.createGroup(INFO, { name: 'devs', capabilities: ['CREATE_ENTITY'] });
      await h.identity.createGroup(INFO, { name: 'interns' });
      const staff = await h.identity.createGroup(INFO, {
        name: 'staff',
        managedBy: 'admins',
        capabilities: ['LOCK_ENTITY'],
        expansions: [
          { mode: 'INCLUDE', group: 'devs' },
          { mode: 'EXCLUDE', group: 'interns' },
        ],
      });
      assert.equal(staff.number, 4);
      assert.deepEqual(await h.identity.groupInfo('staff'), staff);
      assert.deepEqual(
        (await h.identity.searchGroups({ text: 'ADM' })).map((g) => g.name),
        ['admins'],
      );
    });

    it('updates display name and manager, untyped metadata, kv and capabilities', async () => {
      let g = await h.identity.updateGroup(INFO, 'devs', { displayName: 'Developers', managedBy: 'admins' });
      assert.equal(g.displayName, 'Developers');
      assert.equal(g.managedBy, 'admins');
      g = await h.identity.groupUntypedMeta(INFO, 'devs', { action: 'upsert', key: 'room', value: '42' });
      assert.deepEqual(g.untypedMeta, ['room:42']);
      g = await h.identity.groupUntypedMeta(INFO, 'devs', { action: 'clear-exact', key: 'room' });
      assert.deepEqual(g.untypedMeta, []);
      await h.identity.groupKv(INFO, 'devs', { action: 'add', key: 'slack', values: ['#dev'] });
      assert.deepEqual(await h.identity.groupKvGet('devs', 'slack'), { values: ['#dev'] });
      g = await h.identity.groupKv(INFO, 'devs', { action: 'replace', key: 'slack', values: ['#devs'] });
      assert.deepEqual(g.kv, { slack: { values: ['#devs'] } });
      g = await h.identity.groupCapabilities(INFO, 'devs', { action: 'add', value: 'CREATE_GROUP' });
      assert.deepEqual(g.capabilities, ['CREATE_ENTITY', 'CREATE_GROUP']);
      g = await h.identity.groupCapabilities(INFO, 'devs', { action: 'remove', value: 'CREATE_GROUP' });
      assert.deepEqual((await h.identity.groupInfo('devs')).capabilities, ['CREATE_ENTITY']);
      await h.identity.groupKv(INFO, 'devs', { action: 'delete', key: 'slack' });
      assert.deepEqual((await h.identity.groupInfo('devs')).kv, {});
    });

    it('adds and removes members, the entity as the result', async () => {
      let ann = await h.identity.addMember(INFO, 'devs', 'ann');
      assert.deepEqual(ann.meta.groups, ['devs']);
      ann = await h.identity.addMember(INFO, 'admins', 'ann');
      assert.deepEqual(ann.meta.groups, ['admins', 'devs']);
      await h.identity.addMember(INFO, 'devs', 'ben');
      await h.identity.addMember(INFO, 'interns', 'ben');
      await h.identity.addMember(INFO, 'staff', 'cy');
      await h.identity.addMember(INFO, 'interns', 'dee');
      ann = await h.identity.removeMember(INFO, 'admins', 'ann');
      assert.deepEqual(ann.meta.groups, ['devs']);
      assert.deepEqual(await h.identity.entityGroups('ann', { indirect: false }), ['devs']);
    });

    it('resolves members through INCLUDE and EXCLUDE', async () => {
      // staff = cy (direct) + devs (ann, ben) − interns (ben, dee)
      assert.deepEqual(await h.identity.groupMembers('staff'), ['ann', 'cy']);
      await h.identity.createGroup(INFO, {
        name: 'all',
        expansions: [
          { mode: 'INCLUDE', group: 'staff' },
          { mode: 'INCLUDE', group: 'interns' },
        ],
      });
      assert.deepEqual(await h.identity.groupMembers('all'), ['ann', 'ben', 'cy', 'dee']);
    });

    it('lists an entity groups directly or through expansions, and its effective capabilities', async () => {
      assert.deepEqual(await h.identity.entityGroups('ann', { indirect: true }), ['all', 'devs', 'staff']);
      // ben is a dev, but staff excludes interns, and ben is an intern.
      assert.deepEqual(await h.identity.entityGroups('ben', { indirect: true }), ['all', 'devs', 'interns']);
      await h.identity.entityCapabilities(INFO, 'ann', { action: 'add', value: 'MODIFY_ENTITY_KEYS' });
      assert.deepEqual(await h.identity.effectiveCapabilities('ann'), ['CREATE_ENTITY', 'MODIFY_ENTITY_KEYS', 'LOCK_ENTITY']);
      assert.deepEqual(await h.identity.effectiveCapabilities('ben'), ['CREATE_ENTITY']);
      assert.deepEqual(await h.identity.effectiveCapabilities('dee'), []);
    });

    it('adds and removes expansions', async () => {
      let g = await h.identity.groupExpansions(INFO, 'interns', { action: 'add', value: { mode: 'INCLUDE', group: 'admins' } });
      assert.deepEqual(g.expansions, [{ mode: 'INCLUDE', group: 'admins' }]);
      g = await h.identity.groupExpansions(INFO, 'interns', { action: 'remove', value: { mode: 'INCLUDE', group: 'admins' } });
      assert.deepEqual((await h.identity.groupInfo('interns')).expansions, []);
    });

    it('destroys a group no one expands or is managed by, with its memberships', async () => {
      await h.identity.destroyGroup(INFO, 'all');
      await rejectsWith(h.identity.groupInfo('all'), 'KH_ERR_GROUP_NOT_FOUND');
      await h.identity.createGroup(INFO, { name: 'temp' });
      await h.identity.addMember(INFO, 'temp', 'dee');
      await h.identity.destroyGroup(INFO, 'temp');
      assert.deepEqual(await h.identity.entityGroups('dee', { indirect: true }), ['interns']);
    });
  });
});
