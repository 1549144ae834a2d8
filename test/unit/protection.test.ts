// The data-dependent authorization rules of src/identity/protection.ts, through the identity
// operations (so inside their transactions): protected subjects, what a group confers, and the
// last unlocked GLOBAL_ROOT holder. Each refusal writes nothing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Capability, Entity, HookParams } from 'keyhold-plugin-sdk';
import { capabilitiesConferred, someUnlockedRoot } from '../../src/identity/protection.js';
import type { RequestInfo } from '../../src/lifecycle/engine.js';
import { INFO, openHarness, refusedWithoutChange, TestDispatcher, type Harness } from '../support/identity-harness.js';
import { forEachStore } from '../support/stores.js';

forEachStore((_kind, openStore) => {
  const as = (caller: string, ...capabilities: Capability[]): RequestInfo => ({ requestId: `as-${caller}`, caller, capabilities });

  describe('protection: what a group confers', () => {
    let h: Harness;
    before(async () => {
      h = openHarness(undefined, await openStore());
      // top INCLUDEs middle, which EXCLUDEs bottom: joining bottom takes top's and middle's capabilities away.
      await h.identity.createGroup(INFO, { name: 'bottom', capabilities: ['CREATE_GROUP'] });
      await h.identity.createGroup(INFO, {
        name: 'middle',
        capabilities: ['LOCK_ENTITY'],
        expansions: [{ mode: 'EXCLUDE', group: 'bottom' }],
      });
      await h.identity.createGroup(INFO, {
        name: 'top',
        capabilities: ['GLOBAL_ROOT'],
        expansions: [{ mode: 'INCLUDE', group: 'middle' }],
      });
      await h.identity.createGroup(INFO, { name: 'aside', capabilities: ['DESTROY_GROUP'] });
    });
    after(() => h.close());

    it('is its own capabilities plus those of every group expanding it, either mode, transitively', async () => {
      assert.deepEqual(await capabilitiesConferred(h.store.reader, 'bottom'), ['GLOBAL_ROOT', 'LOCK_ENTITY', 'CREATE_GROUP']);
      assert.deepEqual(await capabilitiesConferred(h.store.reader, 'middle'), ['GLOBAL_ROOT', 'LOCK_ENTITY']);
      assert.deepEqual(await capabilitiesConferred(h.store.reader, 'top'), ['GLOBAL_ROOT']);
      assert.deepEqual(await capabilitiesConferred(h.store.reader, 'aside'), ['DESTROY_GROUP']);
    });
  });

  describe('protection: protected subjects', () => {
    let h: Harness;
    before(async () => {
      h = openHarness(undefined, await openStore());
      await h.identity.createEntity(INFO, { id: 'root', capabilities: ['GLOBAL_ROOT'] });
      await h.identity.createEntity(INFO, { id: 'locker', capabilities: ['LOCK_ENTITY'] });
      await h.identity.createEntity(INFO, { id: 'other-locker', capabilities: ['LOCK_ENTITY'] });
      await h.identity.createEntity(INFO, { id: 'plain' });
      await h.identity.createGroup(INFO, { name: 'admins', capabilities: ['GLOBAL_ROOT'] });
      await h.identity.createGroup(INFO, { name: 'admin-team' });
      await h.identity.groupExpansions(INFO, 'admins', { action: 'add', value: { mode: 'INCLUDE', group: 'admin-team' } });
      await h.identity.createGroup(INFO, { name: 'team', managedBy: 'admin-team' });
    });
    after(() => h.close());

    it('lets a capability act on subjects holding no more than the caller', async () => {
      await h.identity.lockEntity(as('locker', 'LOCK_ENTITY'), 'plain');
      await h.identity.lockEntity(as('locker', 'LOCK_ENTITY'), 'other-locker');
      await h.identity.lockEntity(as('locker', 'LOCK_ENTITY'), 'locker');
    });

    it('refuses a subject holding more, naming what is missing and why', async () => {
      const err = await refusedWithoutChange(
        h.store,
        () => h.identity.lockEntity(as('locker', 'LOCK_ENTITY'), 'root'),
        'KH_ERR_FORBIDDEN',
        /entity "root" holds GLOBAL_ROOT, which "locker" does not have/,
      );
      assert.deepEqual(err.details, { needed: ['GLOBAL_ROOT'], entity: 'root', reason: 'holds' });
      await refusedWithoutChange(
        h.store,
        () => h.identity.unlockEntity(as('x', 'UNLOCK_ENTITY'), 'other-locker'),
        'KH_ERR_FORBIDDEN',
        /holds LOCK_ENTITY/,
      );
    });

    it('checks a membership change against the entity and against what the group confers', async () => {
      const members = as('member-admin', 'MODIFY_GROUP_MEMBERS');
      const err = await refusedWithoutChange(
        h.store,
        () => h.identity.addMember(members, 'admin-team', 'plain'),
        'KH_ERR_FORBIDDEN',
        /group "admin-team" confers/,
      );
      assert.deepEqual(err.details, { needed: ['GLOBAL_ROOT'], group: 'admin-team', reason: 'confers' });
      await refusedWithoutChange(
        h.store,
        () => h.identity.addMember(members, 'team', 'locker'),
        'KH_ERR_FORBIDDEN',
        /entity "locker" holds LOCK_ENTITY/,
      );
      await h.identity.addMember(members, 'team', 'plain');
    });

    it('checks expansions, managedBy and destroying against what the group confers; display name and metadata are not protected', async () => {
      const meta = as('meta-admin', 'MODIFY_GROUP_META');
      await refusedWithoutChange(
        h.store,
        () => h.identity.groupExpansions(meta, 'admin-team', { action: 'add', value: { mode: 'INCLUDE', group: 'team' } }),
        'KH_ERR_FORBIDDEN',
      );
      await refusedWithoutChange(h.store, () => h.identity.updateGroup(meta, 'admins', { managedBy: 'team' }), 'KH_ERR_FORBIDDEN');
      await refusedWithoutChange(h.store, () => h.identity.destroyGroup(as('destroyer', 'DESTROY_GROUP'), 'admins'), 'KH_ERR_FORBIDDEN');
      await h.identity.updateGroup(meta, 'admins', { displayName: 'Administrators' });
      await h.identity.groupKv(meta, 'admins', { action: 'add', key: 'room', values: ['1'] });
      await h.identity.updateGroup(meta, 'team', { managedBy: '' });
    });

    it('lets GLOBAL_ROOT act on every subject', async () => {
      const root = as('root', 'GLOBAL_ROOT');
      await h.identity.addMember(root, 'admin-team', 'plain');
      await h.identity.removeMember(root, 'admin-team', 'plain');
      await h.identity.entityKeys(root, 'root', { action: 'add', value: 'ssh-ed25519 AAAA root' });
    });
  });

  describe('protection: the last unlocked GLOBAL_ROOT holder', () => {
    let h: Harness;
    before(async () => {
      h = openHarness(undefined, await openStore());
      await h.identity.createEntity(INFO, { id: 'root', capabilities: ['GLOBAL_ROOT'] });
      await h.identity.createEntity(INFO, { id: 'admin' });
      await h.identity.createEntity(INFO, { id: 'spare', capabilities: ['GLOBAL_ROOT'] });
      await h.identity.lockEntity(INFO, 'spare');
      await h.identity.createGroup(INFO, { name: 'outcasts' });
      await h.identity.createGroup(INFO, {
        name: 'admins',
        capabilities: ['GLOBAL_ROOT'],
        expansions: [{ mode: 'EXCLUDE', group: 'outcasts' }],
      });
      await h.identity.addMember(INFO, 'admins', 'admin');
    });
    after(() => h.close());

    it('finds group members first, then direct holders, never a locked one', async () => {
      assert.equal(await someUnlockedRoot(h.store.reader), 'admin');
      await h.identity.lockEntity(INFO, 'admin');
      assert.equal(await someUnlockedRoot(h.store.reader), 'root');
      await h.identity.unlockEntity(INFO, 'admin');
    });

    it('refuses every change that would leave none, also to the server itself', async () => {
      // Only root holds GLOBAL_ROOT directly (spare is locked); admin holds it through admins.
      await h.identity.removeMember(INFO, 'admins', 'admin');
      const refusals: [string, () => Promise<unknown>][] = [
        ['lock', () => h.identity.lockEntity(INFO, 'root')],
        ['destroy', () => h.identity.destroyEntity(INFO, 'root')],
        ['capability removal', () => h.identity.entityCapabilities(INFO, 'root', { action: 'remove', value: 'GLOBAL_ROOT' })],
      ];
      for (const [what, attempt] of refusals)
        await refusedWithoutChange(h.store, attempt, 'KH_ERR_LAST_ROOT', /no unlocked entity would hold GLOBAL_ROOT/).catch((err: Error) =>
          assert.fail(`${what}: ${err.message}`),
        );
      // Now root's only through the group.
      await h.identity.addMember(INFO, 'admins', 'root');
      await h.identity.entityCapabilities(INFO, 'root', { action: 'remove', value: 'GLOBAL_ROOT' });
      const groupRefusals: [string, () => Promise<unknown>][] = [
        ['membership remove', () => h.identity.removeMember(INFO, 'admins', 'root')],
        ['membership add into an excluded group', () => h.identity.addMember(INFO, 'outcasts', 'root')],
        ['group capability removal', () => h.identity.groupCapabilities(INFO, 'admins', { action: 'remove', value: 'GLOBAL_ROOT' })],
      ];
      for (const [what, attempt] of groupRefusals)
        await refusedWithoutChange(h.store, attempt, 'KH_ERR_LAST_ROOT').catch((err: Error) => assert.fail(`${what}: ${err.message}`));
      await h.identity.createGroup(INFO, { name: 'root-only' });
      await h.identity.addMember(INFO, 'root-only', 'root');
      await h.identity.groupExpansions(INFO, 'admins', { action: 'remove', value: { mode: 'EXCLUDE', group: 'outcasts' } });
      await h.identity.groupExpansions(INFO, 'admins', { action: 'add', value: { mode: 'EXCLUDE', group: 'outcasts' } });
      await refusedWithoutChange(
        h.store,
        () => h.identity.groupExpansions(INFO, 'admins', { action: 'add', value: { mode: 'EXCLUDE', group: 'root-only' } }),
        'KH_ERR_LAST_ROOT',
      );
      await h.identity.removeMember(INFO, 'root-only', 'root');
      await h.identity.destroyGroup(INFO, 'root-only');
      // With another unlocked holder, each is allowed.
      await h.identity.unlockEntity(INFO, 'spare');
      await h.identity.removeMember(INFO, 'admins', 'root');
      await h.identity.lockEntity(INFO, 'root');
      await refusedWithoutChange(h.store, () => h.identity.destroyEntity(INFO, 'spare'), 'KH_ERR_LAST_ROOT');
    });

    it('refuses destroying the group through which the last holder holds it', async () => {
      const h2 = openHarness(undefined, await openStore());
      try {
        await h2.identity.createEntity(INFO, { id: 'root' });
        await h2.identity.createGroup(INFO, { name: 'admins', capabilities: ['GLOBAL_ROOT'] });
        await h2.identity.addMember(INFO, 'admins', 'root');
        await refusedWithoutChange(h2.store, () => h2.identity.destroyGroup(INFO, 'admins'), 'KH_ERR_LAST_ROOT');
      } finally {
        await h2.close();
      }
    });

    it('applies to what POST hooks change too: the data as it will be committed', async () => {
      const lockEntity = ({ subject, context }: HookParams) => ({
        subject: { ...(subject as Entity), meta: { ...(subject as Entity).meta, locked: true } },
        state: context.state,
      });
      const lockRoot = new TestDispatcher([{ name: 'locker', hooks: { postEntityUpdate: lockEntity } }]);
      const h2 = openHarness(lockRoot, await openStore());
      try {
        await h2.identity.createEntity(INFO, { id: 'root', capabilities: ['GLOBAL_ROOT'] });
        await refusedWithoutChange(
          h2.store,
          () => h2.identity.entityKeys(INFO, 'root', { action: 'add', value: 'ssh-ed25519 AAAA root' }),
          'KH_ERR_LAST_ROOT',
        );
      } finally {
        await h2.close();
      }
    });
  });
});
