// The SDK's OPERATIONS is the list of what hooks see as context.operation: every operation the
// identity layer runs is in it, at the point it is listed with, and every listed one is run.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hookSpec, HOOK_NAMES, OPERATIONS, operationsAt, type HookParams } from 'keyhold-plugin-sdk';
import { INFO, openHarness, TestDispatcher } from '../support/identity-harness.js';

describe('OPERATIONS', () => {
  it('lists exactly the operations the identity layer runs, each at its point', async (t) => {
    const seen = new Set<string>();
    const record = (p: HookParams) => (
      seen.add(`${hookSpec(p.hook).point} ${p.context.operation}`),
      { subject: p.subject, state: p.context.state }
    );
    const h = openHarness(new TestDispatcher([{ name: 'recorder', hooks: Object.fromEntries(HOOK_NAMES.map((name) => [name, record])) }]));
    t.after(() => h.close());
    const i = h.identity;
    await i.createEntity(INFO, { id: 'e', secret: 'pw' });
    await i.updateEntityMeta(INFO, 'e', { shell: '/bin/sh' });
    await i.entityUntypedMeta(INFO, 'e', { action: 'upsert', key: 'k', value: 'v' });
    await i.entityKv(INFO, 'e', { action: 'add', key: 'k', values: ['v'] });
    await i.entityKeys(INFO, 'e', { action: 'add', value: 'ssh-ed25519 AAAA' });
    await i.entityCapabilities(INFO, 'e', { action: 'add', value: 'LOCK_ENTITY' });
    await i.authCheck(INFO, 'e', 'pw');
    await i.lockEntity(INFO, 'e');
    await i.unlockEntity(INFO, 'e');
    await i.createGroup(INFO, { name: 'g' });
    await i.createGroup(INFO, { name: 'h' });
    await i.updateGroup(INFO, 'g', { displayName: 'G' });
    await i.groupUntypedMeta(INFO, 'g', { action: 'upsert', key: 'k', value: 'v' });
    await i.groupKv(INFO, 'g', { action: 'add', key: 'k', values: [] });
    await i.groupCapabilities(INFO, 'g', { action: 'add', value: 'LOCK_ENTITY' });
    await i.groupExpansions(INFO, 'g', { action: 'add', value: { mode: 'INCLUDE', group: 'h' } });
    await i.addMember(INFO, 'g', 'e');
    await i.removeMember(INFO, 'g', 'e');
    await i.destroyGroup(INFO, 'g');
    await i.destroyEntity(INFO, 'e');
    assert.deepEqual([...seen].sort(), OPERATIONS.map((o) => `${o.point} ${o.operation}`).sort());
    assert.deepEqual(operationsAt('EntityLock'), ['entity.lock']);
  });
});
