// The hook context the engine builds, in-process: the request's side of RequestInfo (source,
// address, user agent, declared client) on every hook, `before` on exactly the POST hooks of the
// points that change an existing object (the object as loaded), operations checked against the
// typed list before any plugin is called, and the test harness applying the same rules.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  HOOK_NAMES,
  hookSpec,
  NullPlugin,
  pointChange,
  type Entity,
  type HookContext,
  type HookParams,
  type OperationName,
  type PluginContext,
} from 'keyhold-plugin-sdk';
import { fakeEntity, PluginHarness } from 'keyhold-plugin-sdk/testing';
import type { RequestInfo } from '../../src/lifecycle/engine.js';
import { INFO, openHarness, TestDispatcher } from '../support/identity-harness.js';

function recording() {
  const seen: { hook: string; context: HookContext }[] = [];
  const record = (p: HookParams) => (
    seen.push({ hook: p.hook, context: structuredClone(p.context) }),
    { subject: p.subject, state: p.context.state }
  );
  const dispatcher = new TestDispatcher([{ name: 'recorder', hooks: Object.fromEntries(HOOK_NAMES.map((name) => [name, record])) }]);
  return { seen, dispatcher };
}

describe('the hook context the engine builds', () => {
  it("carries the request's source, address, user agent and declared client; the server's own requests say source server", async (t) => {
    const { seen, dispatcher } = recording();
    const h = openHarness(dispatcher);
    t.after(() => h.close());
    await h.identity.createEntity(INFO, { id: 'alice' });
    const { deadline: _d, state: _s, ...fromServer } = seen.at(-1)!.context;
    assert.deepEqual(fromServer, { requestId: INFO.requestId, operation: 'entity.create', caller: null, source: 'server' });
    const info: RequestInfo = {
      ...INFO,
      requestId: 'r-api',
      caller: 'root',
      source: 'api',
      clientAddress: '192.0.2.4',
      userAgent: 'agent/1',
      client: 'cli/1.2.3',
    };
    await h.identity.lockEntity(info, 'alice');
    const pre = seen.find((s) => s.hook === 'preEntityLock')!.context;
    const { deadline: _d2, state: _s2, ...fromApi } = pre;
    assert.deepEqual(fromApi, {
      requestId: 'r-api',
      operation: 'entity.lock',
      caller: 'root',
      source: 'api',
      clientAddress: '192.0.2.4',
      userAgent: 'agent/1',
      client: 'cli/1.2.3',
    });
  });

  it('gives `before` (the object as loaded) to the POST hooks of update points only, never with a secret', async (t) => {
    const { seen, dispatcher } = recording();
    const h = openHarness(dispatcher);
    t.after(() => h.close());
    const i = h.identity;
    await i.createEntity(INFO, { id: 'e', secret: 'pw-123456', meta: { shell: '/bin/sh' } });
    await i.updateEntityMeta(INFO, 'e', { shell: '/bin/zsh' });
    await i.authCheck(INFO, 'e', 'pw-123456');
    await i.lockEntity(INFO, 'e');
    await i.createGroup(INFO, { name: 'g' });
    await i.updateGroup(INFO, 'g', { displayName: 'G' });
    await i.addMember(INFO, 'g', 'e');
    await i.destroyGroup(INFO, 'g');
    await i.destroyEntity(INFO, 'e');
    for (const { hook, context } of seen) {
      const { point, phase } = hookSpec(hook as (typeof HOOK_NAMES)[number]);
      assert.equal(context.before !== undefined, phase === 'post' && pointChange(point) === 'update', `${hook} (${context.operation})`);
      if (context.before && 'id' in context.before) assert.equal(context.before.secret, '', hook);
    }
    const before = (hook: string, operation: string) =>
      seen.find((s) => s.hook === hook && s.context.operation === operation)?.context.before as Entity;
    assert.equal(before('postEntityUpdate', 'entity.update-meta').meta.shell, '/bin/sh');
    assert.equal(before('postEntityLock', 'entity.lock').meta.locked, false);
    assert.deepEqual(before('postMembershipAdd', 'group.add-member').meta.groups, []);
    // The SecretChange that follows a create in the same request: the object as the create made it.
    assert.equal(before('postSecretChange', 'entity.set-secret').id, 'e');
  });

  it('refuses a step whose operation is not listed at its point, before any plugin is called', async (t) => {
    const { seen, dispatcher } = recording();
    const h = openHarness(dispatcher);
    t.after(() => h.close());
    await h.identity.createEntity(INFO, { id: 'e' });
    seen.length = 0;
    const step = {
      point: 'EntityLock' as const,
      request: {},
      subjects: [{ kind: 'entity' as const, key: 'e' }],
      load: async () => fakeEntity({ id: 'e' }),
      change: async (_r: unknown, s: Entity) => s,
      commit: async () => {},
    };
    for (const [operation, problem] of [
      ['entity.frobnicate', /"entity\.frobnicate" is not one of OPERATIONS \(at EntityLock: entity\.lock\)/],
      ['entity.unlock', /entity\.unlock runs at EntityUnlock, not at EntityLock/],
    ] as const)
      await assert.rejects(h.engine.run({ ...step, operation: operation as OperationName }, INFO), problem);
    assert.deepEqual(seen, []);
  });
});

describe('the test harness', () => {
  it('gives POST hooks of an update `before` as the host does, and refuses operations the host would never send', async () => {
    const got: Partial<Record<string, HookContext<Entity>>> = {};
    class Watch extends NullPlugin {
      override preEntityLock(subject: Entity, _r: unknown, context: PluginContext<Entity>): Entity {
        got.pre = context;
        return subject;
      }
      override postEntityLock(subject: Entity, _r: unknown, context: PluginContext<Entity>): Entity {
        got.post = context;
        return subject;
      }
    }
    const h = await PluginHarness.start(new Watch());
    const alice = fakeEntity({ id: 'alice' });
    await h.run('EntityLock', alice, { change: (e) => ({ ...e, meta: { ...e.meta, locked: true } }) });
    assert.deepEqual(
      [got.pre?.before, got.post?.before?.meta.locked, got.post?.operation, got.post?.source],
      [undefined, false, 'entity.lock', 'api'],
    );
    await assert.rejects(
      h.call('preEntityLock', alice, {}, { operation: 'entity.unlock' }),
      /entity\.unlock runs at EntityUnlock, not at EntityLock/,
    );
    await assert.rejects(h.run('EntityLock', alice, { operation: 'test' as OperationName }), /"test" is not one of OPERATIONS/);
  });
});
