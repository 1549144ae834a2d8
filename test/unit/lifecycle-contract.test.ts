// The lifecycle contract plugin authors rely on, proved with in-process plugins over the real
// engine, identity operations and SQLite store.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  HOOK_NAMES,
  parseEntity,
  type Entity,
  type HookContext,
  type HookName,
  type HookParams,
  type HookResult,
  type JsonObject,
} from 'keyhold-plugin-sdk';
import type { AuthFailed } from '../../src/identity/auth-failure.js';
import { runHook } from '../../src/lifecycle/chain.js';
import { PluginCallError } from '../../src/lifecycle/dispatcher.js';
import {
  INFO,
  openHarness,
  refusedWithoutChange,
  rejectsWith,
  snapshot,
  TestDispatcher,
  veto,
  type Harness,
  type TestHook,
  type TestPlugin,
} from '../support/identity-harness.js';
import { forEachStore } from '../support/stores.js';

forEachStore((_kind, openStore) => {
  const pass: TestHook = (p) => ({ subject: p.subject, state: p.context.state });

  /** A hook that edits the entity it receives. */
  const editEntity =
    (edit: (e: Entity) => Entity): TestHook =>
    (p) => ({ subject: edit(p.subject as Entity), state: p.context.state });

  async function withPlugins(plugins: TestPlugin[], run: (h: Harness, d: TestDispatcher) => Promise<void>): Promise<void> {
    const dispatcher = new TestDispatcher(plugins);
    const h = openHarness(dispatcher, await openStore());
    try {
      await run(h, dispatcher);
    } finally {
      await h.close();
    }
  }

  describe('lifecycle contract', () => {
    it('calls each operation PRE then POST at its own point, and only plugins implementing the hook', async () => {
      const seen: HookName[] = [];
      const recorder: TestPlugin = {
        name: 'recorder',
        hooks: Object.fromEntries(
          HOOK_NAMES.map((name) => [
            name,
            (p: HookParams) => {
              seen.push(p.hook);
              return { subject: p.subject, state: p.context.state };
            },
          ]),
        ),
      };
      const bystander: TestPlugin = { name: 'bystander', hooks: { preGroupDestroy: pass } };
      await withPlugins([recorder, bystander], async ({ identity: i }, d) => {
        const expect = async (op: () => Promise<unknown>, point: string) => {
          seen.length = 0;
          await op();
          assert.deepEqual(seen, [`pre${point}`, `post${point}`]);
        };
        await expect(() => i.createEntity(INFO, { id: 'e' }), 'EntityCreate');
        await expect(() => i.updateEntityMeta(INFO, 'e', { shell: '/bin/sh' }), 'EntityUpdate');
        await expect(() => i.entityUntypedMeta(INFO, 'e', { action: 'upsert', key: 'k', value: 'v' }), 'EntityUpdate');
        await expect(() => i.entityKv(INFO, 'e', { action: 'add', key: 'k', values: ['v'] }), 'EntityUpdate');
        await expect(() => i.entityKeys(INFO, 'e', { action: 'add', value: 'ssh-ed25519 AAAA' }), 'EntityUpdate');
        await expect(() => i.entityCapabilities(INFO, 'e', { action: 'add', value: 'LOCK_ENTITY' }), 'EntityUpdate');
        await expect(() => i.setSecret(INFO, 'e', 'pw'), 'SecretChange');
        await expect(() => i.authCheck(INFO, 'e', 'pw'), 'AuthCheck');
        await expect(() => i.lockEntity(INFO, 'e'), 'EntityLock');
        await expect(() => i.unlockEntity(INFO, 'e'), 'EntityUnlock');
        await expect(() => i.createGroup(INFO, { name: 'g' }), 'GroupCreate');
        await expect(() => i.createGroup(INFO, { name: 'h' }), 'GroupCreate');
        await expect(() => i.updateGroup(INFO, 'g', { displayName: 'G' }), 'GroupUpdate');
        await expect(() => i.groupUntypedMeta(INFO, 'g', { action: 'upsert', key: 'k', value: 'v' }), 'GroupUpdate');
        await expect(() => i.groupKv(INFO, 'g', { action: 'add', key: 'k', values: [] }), 'GroupUpdate');
        await expect(() => i.groupCapabilities(INFO, 'g', { action: 'add', value: 'LOCK_ENTITY' }), 'GroupUpdate');
        await expect(() => i.groupExpansions(INFO, 'g', { action: 'add', value: { mode: 'INCLUDE', group: 'h' } }), 'GroupUpdate');
        await expect(() => i.addMember(INFO, 'g', 'e'), 'MembershipAdd');
        await expect(() => i.removeMember(INFO, 'g', 'e'), 'MembershipRemove');
        await expect(() => i.destroyGroup(INFO, 'g'), 'GroupDestroy');
        await expect(() => i.destroyEntity(INFO, 'e'), 'EntityDestroy');
        assert.deepEqual(
          d.calls.filter((c) => c.startsWith('bystander')),
          ['bystander:preGroupDestroy'],
        );
      });
    });

    it('runs plugins in the configured order, every time', async () => {
      const plugins = ['charlie', 'alpha', 'bravo'].map((name) => ({ name, hooks: { preEntityCreate: pass, postEntityCreate: pass } }));
      await withPlugins(plugins, async ({ identity }, d) => {
        for (const id of ['one', 'two', 'three']) {
          d.calls.length = 0;
          await identity.createEntity(INFO, { id });
          assert.deepEqual(d.calls, [
            'charlie:preEntityCreate',
            'alpha:preEntityCreate',
            'bravo:preEntityCreate',
            'charlie:postEntityCreate',
            'alpha:postEntityCreate',
            'bravo:postEntityCreate',
          ]);
        }
      });
    });

    it("feeds each plugin's output to the next, and saves what POST returns", async () => {
      const append = (suffix: string) => editEntity((e) => ({ ...e, meta: { ...e.meta, displayName: e.meta.displayName + suffix } }));
      await withPlugins(
        [
          { name: 'first', hooks: { preEntityUpdate: append('+pre1'), postEntityUpdate: append('+post1') } },
          { name: 'second', hooks: { preEntityUpdate: append('+pre2'), postEntityUpdate: append('+post2') } },
        ],
        async ({ identity }) => {
          await identity.createEntity(INFO, { id: 'chained' });
          const returned = await identity.updateEntityMeta(INFO, 'chained', { shell: '/bin/sh' });
          assert.equal(returned.meta.displayName, '+pre1+pre2+post1+post2');
          assert.equal(returned.meta.shell, '/bin/sh');
          assert.deepEqual(await identity.entityInfo('chained'), returned);
        },
      );
    });

    it('carries the state bag from PRE to POST across plugins, fresh for each request', async () => {
      const seenStates: JsonObject[] = [];
      const note =
        (key: string): TestHook =>
        (p) => {
          seenStates.push(structuredClone(p.context.state));
          return { subject: p.subject, state: { ...p.context.state, [key]: p.hook } };
        };
      await withPlugins(
        [
          { name: 'a', hooks: { preEntityLock: note('a'), postEntityLock: note('a2') } },
          { name: 'b', hooks: { preEntityLock: note('b'), postEntityLock: note('b2') } },
        ],
        async ({ identity }) => {
          await identity.createEntity(INFO, { id: 'stateful' });
          for (let round = 0; round < 2; round++) {
            seenStates.length = 0;
            await identity.lockEntity(INFO, 'stateful');
            assert.deepEqual(seenStates, [
              {},
              { a: 'preEntityLock' },
              { a: 'preEntityLock', b: 'preEntityLock' },
              { a: 'preEntityLock', b: 'preEntityLock', a2: 'postEntityLock' },
            ]);
          }
        },
      );
    });

    for (const phase of ['pre', 'post'] as const) {
      it(`a ${phase.toUpperCase()} hook that fails aborts the request and writes nothing`, async () => {
        const boom: TestHook = () => {
          throw new Error('exploded');
        };
        const hooks = Object.fromEntries(
          (['EntityCreate', 'EntityUpdate', 'SecretChange', 'MembershipAdd', 'GroupDestroy', 'EntityDestroy'] as const).map((point) => [
            `${phase}${point}`,
            boom,
          ]),
        );
        const setup = new TestDispatcher([]);
        const h = openHarness(setup, await openStore());
        try {
          await h.identity.createEntity(INFO, { id: 'kept', secret: 'old' });
          await h.identity.createGroup(INFO, { name: 'kept-group' });
          h.engine.setDispatcher(new TestDispatcher([{ name: 'bomb', hooks }]));
          const failed = /plugin "bomb" failed in \w+: exploded/;
          await refusedWithoutChange(h.store, () => h.identity.createEntity(INFO, { id: 'new' }), 'KH_ERR_PLUGIN_FAILED', failed);
          await refusedWithoutChange(
            h.store,
            () => h.identity.updateEntityMeta(INFO, 'kept', { shell: '/bin/false' }),
            'KH_ERR_PLUGIN_FAILED',
            failed,
          );
          await refusedWithoutChange(h.store, () => h.identity.setSecret(INFO, 'kept', 'new'), 'KH_ERR_PLUGIN_FAILED', failed);
          await refusedWithoutChange(h.store, () => h.identity.addMember(INFO, 'kept-group', 'kept'), 'KH_ERR_PLUGIN_FAILED', failed);
          await refusedWithoutChange(h.store, () => h.identity.destroyGroup(INFO, 'kept-group'), 'KH_ERR_PLUGIN_FAILED', failed);
          await refusedWithoutChange(h.store, () => h.identity.destroyEntity(INFO, 'kept'), 'KH_ERR_PLUGIN_FAILED', failed);
          h.engine.setDispatcher(setup);
          await h.identity.authCheck(INFO, 'kept', 'old');
        } finally {
          await h.close();
        }
      });
    }

    it('refuses a hook result that changes id, number, name, memberships or sets a secret, naming plugin and hook', async () => {
      const cases: [HookName, TestHook, string][] = [
        ['preEntityCreate', editEntity((e) => ({ ...e, id: 'someone-else' })), 'id'],
        ['postEntityCreate', editEntity((e) => ({ ...e, number: e.number + 1 })), 'number'],
        ['preEntityCreate', editEntity((e) => ({ ...e, secret: '$argon2id$planted' })), 'secret'],
        ['postEntityCreate', editEntity((e) => ({ ...e, meta: { ...e.meta, groups: ['admins'] } })), 'meta.groups'],
        ['preGroupCreate', (p) => ({ subject: { ...p.subject, name: 'other' }, state: {} }), 'name'],
        ['postGroupCreate', (p) => ({ subject: { ...p.subject, number: 77 }, state: {} }), 'number'],
      ];
      for (const [hook, fn, field] of cases) {
        await withPlugins([{ name: 'sneaky', hooks: { [hook]: fn } }], async (h) => {
          await h.identity.createGroup(INFO, { name: 'admins' }).catch(() => undefined);
          const attempt = hook.endsWith('GroupCreate')
            ? () => h.identity.createGroup(INFO, { name: 'g' })
            : () => h.identity.createEntity(INFO, { id: 'e' });
          const err = await refusedWithoutChange(
            h.store,
            attempt,
            'KH_ERR_PLUGIN_INVALID_RESULT',
            new RegExp(`plugin "sneaky" failed in ${hook}: .*changed ${field}\\b`),
          );
          assert.deepEqual({ plugin: err.details?.plugin, hook: err.details?.hook }, { plugin: 'sneaky', hook });
        });
      }
    });

    it('turns a veto into KH_ERR_PLUGIN_VETO with the message, a crash into KH_ERR_PLUGIN_FAILED', async () => {
      await withPlugins(
        [{ name: 'policy', hooks: { preSecretChange: veto('too short'), preEntityLock: () => Promise.reject(new TypeError('bug')) } }],
        async (h) => {
          await h.identity.createEntity(INFO, { id: 'e' });
          const vetoed = await refusedWithoutChange(
            h.store,
            () => h.identity.setSecret(INFO, 'e', 'pw'),
            'KH_ERR_PLUGIN_VETO',
            /plugin "policy" refused the request in preSecretChange: too short/,
          );
          assert.equal(vetoed.status, 422);
          const crashed = await refusedWithoutChange(
            h.store,
            () => h.identity.lockEntity(INFO, 'e'),
            'KH_ERR_PLUGIN_FAILED',
            /plugin "policy" failed in preEntityLock: bug/,
          );
          assert.equal(crashed.status, 502);
          // A create with a secret the policy refuses creates nothing: both points run in one transaction.
          await refusedWithoutChange(
            h.store,
            () => h.identity.createEntity(INFO, { id: 'weak', secret: 'pw' }),
            'KH_ERR_PLUGIN_VETO',
            /preSecretChange: too short/,
          );
        },
      );
    });

    it('skips a failureMode open plugin that crashes or times out, but never one that vetoes', async () => {
      const shell = (value: string) => editEntity((e) => ({ ...e, meta: { ...e.meta, shell: value } }));
      await withPlugins(
        [
          {
            name: 'flaky',
            failureMode: 'open',
            hooks: {
              preEntityUpdate: () => {
                throw new PluginCallError('crash', 'process died');
              },
              postEntityUpdate: () => {
                throw new PluginCallError('timeout', 'no answer in 2000 ms');
              },
              preEntityLock: veto('locking is not allowed'),
            },
          },
          { name: 'steady', hooks: { preEntityUpdate: shell('/bin/steady') } },
        ],
        async (h, d) => {
          await h.identity.createEntity(INFO, { id: 'e' });
          const updated = await h.identity.updateEntityMeta(INFO, 'e', { home: '/home/e' });
          assert.equal(updated.meta.shell, '/bin/steady');
          assert.deepEqual(d.skips, ['flaky:preEntityUpdate', 'flaky:postEntityUpdate']);
          await refusedWithoutChange(h.store, () => h.identity.lockEntity(INFO, 'e'), 'KH_ERR_PLUGIN_VETO', /locking is not allowed/);
        },
      );
    });

    it('never shows hooks the secret hash; SecretChange hooks alone see the new plain text', async () => {
      const params: HookParams[] = [];
      const record: TestHook = (p) => {
        params.push(p);
        return { subject: p.subject, state: p.context.state };
      };
      const hooks = Object.fromEntries(HOOK_NAMES.map((name) => [name, record]));
      await withPlugins([{ name: 'spy', hooks }], async (h) => {
        await h.identity.createEntity(INFO, { id: 'e', secret: 'first-plain' });
        await h.identity.setSecret(INFO, 'e', 'second-plain');
        await h.identity.authCheck(INFO, 'e', 'second-plain');
        await h.identity.authCheck(INFO, 'e', 'wrong-plain').catch(() => undefined);
        await h.identity.updateEntityMeta(INFO, 'e', { shell: '/bin/sh' });
        const hash = (await h.store.reader.secretHash('e'))!;
        for (const p of params) {
          const wire = JSON.stringify(p);
          assert.equal((p.subject as Entity).secret, '', `${p.hook} got a secret`);
          assert.ok(!wire.includes(hash) && !wire.includes('$argon2'), `${p.hook} saw the hash`);
          assert.ok(!wire.includes('wrong-plain'), `${p.hook} saw the secret of an auth check`);
          if (!p.hook.endsWith('SecretChange'))
            assert.ok(!wire.includes('first-plain') && !wire.includes('second-plain'), `${p.hook} saw a new secret`);
        }
        // A secret given at create is a SecretChange of the same request, so a password policy sees it too.
        const secretChanges = params
          .filter((p) => p.hook === 'preSecretChange')
          .map((p) => ({ request: p.request, requestId: p.context.requestId }));
        assert.deepEqual(secretChanges, [
          { request: { secret: 'first-plain' }, requestId: INFO.requestId },
          { request: { secret: 'second-plain' }, requestId: INFO.requestId },
        ]);
        const update = params.find((p) => p.hook === 'preEntityUpdate')!;
        assert.deepEqual(update.request, { patch: { shell: '/bin/sh' } });
        assert.deepEqual(
          { operation: update.context.operation, caller: update.context.caller, requestId: update.context.requestId },
          { operation: 'entity.update-meta', caller: null, requestId: INFO.requestId },
        );
        assert.ok(update.context.deadline > Date.now());
      });
    });

    it("gives hooks the request's client address when it has one, and none for the server's own requests", async () => {
      const contexts: HookParams['context'][] = [];
      const record: TestHook = (p) => (contexts.push(p.context), { subject: p.subject, state: p.context.state });
      await withPlugins([{ name: 'spy', hooks: { preAuthCheck: record, postAuthCheck: record, preEntityCreate: record } }], async (h) => {
        await h.identity.createEntity(INFO, { id: 'e', secret: 'some-plain' });
        await h.identity.authCheck({ requestId: 'r2', caller: null, capabilities: [], clientAddress: '203.0.113.9' }, 'e', 'some-plain');
        assert.deepEqual(
          contexts.map((c) => c.clientAddress),
          [undefined, '203.0.113.9', '203.0.113.9'],
        );
        assert.equal('clientAddress' in contexts[0]!, false);
      });
    });

    it('gives membership hooks the entity as subject and the group in the request', async () => {
      const params: HookParams[] = [];
      const record: TestHook = (p) => {
        params.push(p);
        return { subject: p.subject, state: p.context.state };
      };
      await withPlugins(
        [{ name: 'spy', hooks: { preMembershipAdd: record, postMembershipAdd: record, postMembershipRemove: record } }],
        async (h) => {
          await h.identity.createEntity(INFO, { id: 'e' });
          await h.identity.createGroup(INFO, { name: 'g' });
          await h.identity.addMember(INFO, 'g', 'e');
          await h.identity.removeMember(INFO, 'g', 'e');
          assert.deepEqual(
            params.map((p) => [p.hook, (p.subject as Entity).id, (p.subject as Entity).meta.groups, p.request]),
            [
              ['preMembershipAdd', 'e', [], { group: 'g' }],
              ['postMembershipAdd', 'e', ['g'], { group: 'g' }],
              ['postMembershipRemove', 'e', [], { group: 'g' }],
            ],
          );
        },
      );
    });

    it('runs AuthCheck POST only after a correct secret', async () => {
      await withPlugins([{ name: 'audit', hooks: { preAuthCheck: pass, postAuthCheck: pass } }], async (h, d) => {
        await h.identity.createEntity(INFO, { id: 'e', secret: 'right' });
        await rejectsWith(h.identity.authCheck(INFO, 'e', 'wrong'), 'KH_ERR_AUTH_FAILED');
        assert.deepEqual(d.calls, ['audit:preAuthCheck']);
        d.calls.length = 0;
        await h.identity.authCheck(INFO, 'e', 'right');
        assert.deepEqual(d.calls, ['audit:preAuthCheck', 'audit:postAuthCheck']);
        d.calls.length = 0;
        await h.identity.lockEntity(INFO, 'e');
        assert.equal(((await rejectsWith(h.identity.authCheck(INFO, 'e', 'right'), 'KH_ERR_AUTH_FAILED')) as AuthFailed).reason, 'locked');
        assert.deepEqual(d.calls, ['audit:preAuthCheck']);
      });
    });

    it('refuses AuthCheck when a PRE hook marks the entity locked, without saving the lock', async () => {
      await withPlugins(
        [{ name: 'lockout', hooks: { preAuthCheck: editEntity((e) => ({ ...e, meta: { ...e.meta, locked: true } })) } }],
        async (h) => {
          await h.identity.createEntity(INFO, { id: 'e', secret: 'right' });
          const refused = await refusedWithoutChange(h.store, () => h.identity.authCheck(INFO, 'e', 'right'), 'KH_ERR_AUTH_FAILED');
          assert.equal((refused as AuthFailed).reason, 'locked');
          assert.equal((await h.identity.entityInfo('e')).meta.locked, false);
        },
      );
    });

    it('answers a veto in AuthCheck as a refused login (the plugin named only for the log), a crash as the outage it is', async () => {
      const plugins: TestPlugin[] = [
        {
          name: 'gatekeeper',
          hooks: {
            preAuthCheck: (p) => ((p.subject as Entity).id === 'crashes' ? Promise.reject(new TypeError('bug')) : veto('not today')(p)),
          },
        },
      ];
      await withPlugins(plugins, async (h) => {
        await h.identity.createEntity(INFO, { id: 'e', secret: 'right' });
        await h.identity.createEntity(INFO, { id: 'crashes', secret: 'right' });
        const vetoed = (await refusedWithoutChange(
          h.store,
          () => h.identity.authCheck(INFO, 'e', 'right'),
          'KH_ERR_AUTH_FAILED',
        )) as AuthFailed;
        const unknown = await rejectsWith(h.identity.authCheck(INFO, 'nobody', 'right'), 'KH_ERR_AUTH_FAILED');
        assert.deepEqual(vetoed.toJSON(), unknown.toJSON());
        assert.equal(vetoed.reason, 'plugin_veto');
        assert.deepEqual(vetoed.logDetail, { plugin: 'gatekeeper', hook: 'preAuthCheck', reason: 'not today' });
        await rejectsWith(
          h.identity.authCheck(INFO, 'crashes', 'right'),
          'KH_ERR_PLUGIN_FAILED',
          /plugin "gatekeeper" failed in preAuthCheck/,
        );
      });
    });

    it("saves a PRE hook's edit when AuthCheck succeeds, and nothing when it fails", async () => {
      // fail2lock's operator reset: preAuthCheck consumes the `fail2lock:RESET` untyped metadata.
      const consumeReset = editEntity((e) => ({
        ...e,
        meta: { ...e.meta, untypedMeta: e.meta.untypedMeta.filter((u) => u !== 'fail2lock:RESET') },
      }));
      await withPlugins([{ name: 'fail2lock', hooks: { preAuthCheck: consumeReset } }], async (h) => {
        await h.identity.createEntity(INFO, { id: 'e', secret: 'right' });
        await h.identity.entityUntypedMeta(INFO, 'e', { action: 'upsert', key: 'fail2lock', value: 'RESET' });
        const before = await snapshot(h.store);
        await rejectsWith(h.identity.authCheck(INFO, 'e', 'wrong'), 'KH_ERR_AUTH_FAILED');
        assert.deepEqual(await snapshot(h.store), before);
        await h.identity.authCheck(INFO, 'e', 'right');
        assert.deepEqual((await h.identity.entityInfo('e')).meta.untypedMeta, []);
      });
    });
  });

  describe('request deadline', () => {
    it('starts no hook call once the deadline has passed: a timeout naming the plugin, or a skip when open', async () => {
      const dispatcher = new TestDispatcher([
        { name: 'lenient', failureMode: 'open', hooks: { preEntityLock: pass } },
        { name: 'strict', hooks: { preEntityLock: pass } },
      ]);
      const subject = parseEntity({ id: 'e' });
      const context: HookContext = { requestId: 'r', operation: 'entity.lock', caller: null, deadline: Date.now() - 1, state: {} };
      await rejectsWith(
        runHook(dispatcher, 'preEntityLock', subject, {}, context),
        'KH_ERR_PLUGIN_TIMEOUT',
        /plugin "strict" failed in preEntityLock: the request's deadline passed/,
      );
      assert.deepEqual(dispatcher.calls, []);
      assert.deepEqual(dispatcher.skips, ['lenient:preEntityLock']);
    });
  });

  describe('plugin set leases', () => {
    it('holds a lease on the plugin set for the whole request, released when it succeeds or fails', async () => {
      let held = 0;
      let leases = 0;
      const dispatcher = new TestDispatcher([{ name: 'policy', hooks: { preEntityLock: veto('no') } }]);
      const leasing = Object.assign(dispatcher, {
        lease: () => {
          held++;
          leases++;
          return () => held--;
        },
      });
      const h = openHarness(leasing, await openStore());
      try {
        await h.identity.createEntity(INFO, { id: 'e' });
        await rejectsWith(h.identity.lockEntity(INFO, 'e'), 'KH_ERR_PLUGIN_VETO');
        assert.equal(leases, 2);
        assert.equal(held, 0);
      } finally {
        await h.close();
      }
    });
  });

  describe('shadow mode', () => {
    it('never blocks: a veto, crash, timeout, down plugin or invalid result is reported, not enforced, whatever the failureMode', async () => {
      const failing =
        (kind: 'crash' | 'timeout' | 'unavailable', message: string): TestHook =>
        () => {
          throw new PluginCallError(kind, message);
        };
      await withPlugins(
        [
          {
            name: 'watched',
            mode: 'shadow',
            failureMode: 'closed',
            hooks: {
              preEntityLock: veto('locking is not allowed'),
              postEntityLock: failing('crash', 'a crash failure'),
              preEntityUnlock: failing('timeout', 'a timeout failure'),
              postEntityUnlock: failing('unavailable', 'an unavailable failure'),
              preEntityUpdate: editEntity((e) => ({ ...e, id: 'mallory' })),
            },
          },
        ],
        async (h, d) => {
          await h.identity.createEntity(INFO, { id: 'e' });
          assert.equal((await h.identity.lockEntity(INFO, 'e')).meta.locked, true);
          assert.equal((await h.identity.unlockEntity(INFO, 'e')).meta.locked, false);
          assert.equal((await h.identity.updateEntityMeta(INFO, 'e', { shell: '/bin/sh' })).id, 'e');
          assert.deepEqual(d.shadowed, [
            { call: 'watched:preEntityLock', outcome: { kind: 'veto', message: 'locking is not allowed' } },
            { call: 'watched:postEntityLock', outcome: { kind: 'crash', message: 'a crash failure' } },
            { call: 'watched:preEntityUnlock', outcome: { kind: 'timeout', message: 'a timeout failure' } },
            { call: 'watched:postEntityUnlock', outcome: { kind: 'unavailable', message: 'an unavailable failure' } },
            { call: 'watched:preEntityUpdate', outcome: { kind: 'invalid', message: 'it changed id, which plugins may not change' } },
          ]);
          assert.deepEqual(d.skips, [], 'a shadow failure is no fail-open skip');
        },
      );
    });

    it('discards its changes to the object and to the state bag: no other plugin sees them, nothing is saved; its own later hooks see its state', async () => {
      const seen: { plugin: string; hook: string; shell: string; state: JsonObject }[] = [];
      const watch =
        (plugin: string, edit: (p: HookParams) => HookResult): TestHook =>
        (p) => {
          seen.push({ plugin, hook: p.hook, shell: (p.subject as Entity).meta.shell, state: p.context.state });
          return edit(p);
        };
      const shadowEdit = (p: HookParams): HookResult => ({
        subject: { ...(p.subject as Entity), meta: { ...(p.subject as Entity).meta, shell: '/bin/shadow' } },
        state: { ...p.context.state, shadow: p.hook },
      });
      const passOn = (p: HookParams): HookResult => ({ subject: p.subject, state: { ...p.context.state, [`enforced-${p.hook}`]: true } });
      await withPlugins(
        [
          {
            name: 'shadow',
            mode: 'shadow',
            hooks: { preEntityUpdate: watch('shadow', shadowEdit), postEntityUpdate: watch('shadow', shadowEdit) },
          },
          { name: 'enforced', hooks: { preEntityUpdate: watch('enforced', passOn), postEntityUpdate: watch('enforced', passOn) } },
        ],
        async (h, d) => {
          await h.identity.createEntity(INFO, { id: 'e' });
          const updated = await h.identity.updateEntityMeta(INFO, 'e', { home: '/home/e' });
          assert.equal(updated.meta.shell, '');
          assert.equal((await h.identity.entityInfo('e')).meta.shell, '');
          assert.deepEqual(seen, [
            { plugin: 'shadow', hook: 'preEntityUpdate', shell: '', state: {} },
            { plugin: 'enforced', hook: 'preEntityUpdate', shell: '', state: {} },
            // Its own PRE's state comes back to it, on top of what the enforcing plugins set.
            {
              plugin: 'shadow',
              hook: 'postEntityUpdate',
              shell: '',
              state: { 'enforced-preEntityUpdate': true, shadow: 'preEntityUpdate' },
            },
            { plugin: 'enforced', hook: 'postEntityUpdate', shell: '', state: { 'enforced-preEntityUpdate': true } },
          ]);
          assert.deepEqual(
            d.shadowed.map((s) => [s.call, s.outcome]),
            [
              ['shadow:preEntityUpdate', { kind: 'change', fields: ['meta.shell'] }],
              ['shadow:postEntityUpdate', { kind: 'change', fields: ['meta.shell'] }],
            ],
          );
        },
      );
    });
  });

  describe('break-glass exemptions', () => {
    it('does not call a plugin for a subject it exempts; other plugins and other subjects are called', async () => {
      await withPlugins(
        [
          { name: 'lockout', exempt: ['root'], hooks: { preAuthCheck: veto('logins are closed'), preEntityUpdate: veto('no changes') } },
          { name: 'audit', hooks: { preAuthCheck: pass } },
        ],
        async (h, d) => {
          await h.identity.createEntity(INFO, { id: 'root', secret: 'root-pw' });
          await h.identity.createEntity(INFO, { id: 'alice', secret: 'alice-pw' });
          assert.equal((await h.identity.authCheck(INFO, 'root', 'root-pw')).id, 'root');
          // The veto reaches the client as any refused login; its reason stays on the error for the log.
          assert.equal(
            ((await rejectsWith(h.identity.authCheck(INFO, 'alice', 'alice-pw'), 'KH_ERR_AUTH_FAILED')) as AuthFailed).reason,
            'plugin_veto',
          );
          await h.identity.updateEntityMeta(INFO, 'root', { shell: '/bin/sh' });
          await rejectsWith(h.identity.updateEntityMeta(INFO, 'alice', { shell: '/bin/sh' }), 'KH_ERR_PLUGIN_VETO', /no changes/);
          assert.deepEqual(d.exempted, ['lockout:preAuthCheck:root', 'lockout:preEntityUpdate:root']);
          assert.deepEqual(d.calls, ['audit:preAuthCheck', 'lockout:preAuthCheck', 'lockout:preEntityUpdate']);
        },
      );
    });
  });
});
