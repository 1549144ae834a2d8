// The committed hooks in the one hook list, NullPlugin and the SDK's test harness.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  COMMITTED_HOOK_NAMES,
  COMMITTED_HOOKS,
  committedHookName,
  HOOK_NAMES,
  isCommittedHookName,
  isHookName,
  isPluginHookName,
  LIFECYCLE_POINTS,
  NullPlugin,
  implementedHooks,
  PLUGIN_HOOK_NAMES,
  type CommittedEvent,
  type Entity,
  type OperationName,
} from 'keyhold-plugin-sdk';
import { fakeEntity, fakeGroup, PluginHarness } from 'keyhold-plugin-sdk/testing';

describe('committed hooks', () => {
  it('are one per lifecycle point, derived from the same list, and no chain hook', () => {
    assert.equal(COMMITTED_HOOKS.length, LIFECYCLE_POINTS.length);
    assert.deepEqual(
      COMMITTED_HOOKS.map((h) => [h.point, h.subject]),
      LIFECYCLE_POINTS.map((p) => [p.point, p.subject]),
    );
    assert.deepEqual([COMMITTED_HOOK_NAMES[0], COMMITTED_HOOK_NAMES.at(-1)], ['committedEntityCreate', 'committedMembershipRemove']);
    assert.equal(committedHookName('GroupUpdate'), 'committedGroupUpdate');
    assert.deepEqual(PLUGIN_HOOK_NAMES, [...HOOK_NAMES, ...COMMITTED_HOOK_NAMES]);
    assert.ok(COMMITTED_HOOK_NAMES.every((h) => isCommittedHookName(h) && isPluginHookName(h) && !isHookName(h)));
    assert.ok(HOOK_NAMES.every((h) => !isCommittedHookName(h) && isPluginHookName(h)));
    assert.ok(!isPluginHookName('committedNothing'));
  });

  it('NullPlugin has them all doing nothing; a plugin reports only those it overrides', async () => {
    const plain = new NullPlugin();
    for (const hook of COMMITTED_HOOK_NAMES) assert.equal(await (plain[hook] as (e: unknown, c: unknown) => unknown)({}, {}), undefined);
    class Mirror extends NullPlugin {
      override preEntityCreate(subject: Entity): Entity {
        return subject;
      }
      override committedGroupDestroy(): void {}
    }
    assert.deepEqual(implementedHooks(new Mirror()), ['preEntityCreate', 'committedGroupDestroy']);
  });

  it('the harness delivers an event as the outbox would, filling in what the test leaves out', async () => {
    const got: CommittedEvent[] = [];
    class Watcher extends NullPlugin {
      override committedEntityUpdate(event: CommittedEvent<Entity>): void {
        got.push(event);
      }
    }
    const h = await PluginHarness.start(new Watcher(), { caller: 'admin' });
    const alice = fakeEntity({ id: 'alice' });
    const returned = await h.deliver('committedEntityUpdate', {
      before: alice,
      after: { ...alice, meta: { ...alice.meta, shell: '/bin/zsh' } },
    });
    assert.deepEqual(got, [returned]);
    assert.deepEqual(
      [returned.seq, returned.point, returned.subjectKind, returned.subjectKey, returned.caller, returned.at, returned.operation],
      [1, 'EntityUpdate', 'entity', 'alice', 'admin', '2026-01-01T00:00:00.000Z', 'entity.update-meta'],
    );
    assert.equal((await h.deliver('committedEntityUpdate', { after: alice })).seq, 2);
    // As serve() refuses it, the harness refuses an operation the host would never send with this hook.
    await assert.rejects(
      h.deliver('committedEntityUpdate', { after: alice, operation: 'group.update' }),
      /group\.update runs at GroupUpdate, not at EntityUpdate/,
    );
    await assert.rejects(
      h.deliver('committedEntityUpdate', { after: alice, operation: 'test' as OperationName }),
      /"test" is not one of OPERATIONS \(at EntityUpdate: entity\.update-meta/,
    );
    await assert.rejects(h.deliver('committedGroupCreate', { after: fakeGroup() }), /does not implement committedGroupCreate/);
  });
});
