// The lifecycle's concurrency contract: hooks run outside any write transaction, requests on the
// same subject run one after another in the order they came, requests on different subjects do
// not wait for each other's hooks, a subject changed underneath is a conflict, and a failure at any
// stage writes nothing and emits no event. Proved with in-process plugins held open by gates.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COMMITTED_HOOK_NAMES, type Entity, type HookParams } from 'keyhold-plugin-sdk';
import type { EventSubscriber, HookDispatcher } from '../../src/lifecycle/dispatcher.js';
import { LifecycleEngine, REQUEST_DEADLINE_MS } from '../../src/lifecycle/engine.js';
import { Identity } from '../../src/identity/identity.js';
import type { Store } from '../../src/store/store.js';
import {
  FAST_HASH,
  INFO,
  refusedWithoutChange,
  rejectsWith,
  snapshot,
  TestDispatcher,
  veto,
  type TestHook,
  type TestPlugin,
} from '../support/identity-harness.js';
import { forEachStore, newStoreSite, type StoreSite } from '../support/stores.js';

forEachStore((kind) => {
  /** A point a hook waits at until the test opens it; `entered` resolves when a hook reached it. */
  class Gate {
    private open!: () => void;
    private reached!: () => void;
    readonly opened = new Promise<void>((resolve) => (this.open = resolve));
    readonly entered = new Promise<void>((resolve) => (this.reached = resolve));

    /** A hook that waits here when `when` holds for its call, and passes the subject on. */
    hook(when: (p: HookParams) => boolean = () => true): TestHook {
      return async (p) => {
        if (when(p)) {
          this.reached();
          await this.opened;
        }
        return { subject: p.subject, state: p.context.state };
      };
    }

    release(): void {
      this.open();
    }
  }

  /** A subscriber to every committed hook: the engine then writes an event for every step. */
  const EVERY_EVENT: EventSubscriber = { plugin: 'events', hooks: new Set(COMMITTED_HOOK_NAMES), deliver: () => Promise.resolve() };

  interface Setup {
    /** Both stores count the write transactions they began. */
    store: Store & { writeTransactions: number };
    engine: LifecycleEngine;
    identity: Identity;
    dispatcher: TestDispatcher;
    site: StoreSite;
  }

  /** A store on a site (so a test can open a second one, as another process or server), events for every step, the plugins given. */
  async function setup(plugins: TestPlugin[], t: { after(fn: () => Promise<void>): void }): Promise<Setup> {
    const site = await newStoreSite(kind);
    const store = (await site.open()) as Setup['store'];
    const dispatcher = new TestDispatcher(plugins);
    const engine = new LifecycleEngine(store, Object.assign(dispatcher, { subscribers: [EVERY_EVENT] }) as HookDispatcher);
    const identity = new Identity(store, engine, { hash: FAST_HASH });
    t.after(async () => {
      await store.close();
      site.remove();
    });
    return { store, engine, identity, dispatcher, site };
  }

  const events = async (store: Store) => (await store.outbox.eventsAfter(0, 1000)).map((e) => `${e.operation}:${e.subjectKey}`);
  const isEntity = (id: string) => (p: HookParams) => (p.subject as Entity).id === id;

  describe('lifecycle concurrency', () => {
    it('runs hooks outside any write transaction: another subject commits while a hook is held open', async (t) => {
      const gate = new Gate();
      const s = await setup([{ name: 'slow', hooks: { preEntityUpdate: gate.hook(isEntity('slow')) } }], t);
      await s.identity.createEntity(INFO, { id: 'slow' });
      await s.identity.createEntity(INFO, { id: 'fast' });
      const slow = s.identity.updateEntityMeta(INFO, 'slow', { displayName: 'Slow' });
      await gate.entered;
      const transactions = s.store.writeTransactions;
      await s.identity.updateEntityMeta(INFO, 'fast', { displayName: 'Fast' });
      assert.equal((await s.store.reader.getEntity('fast'))!.meta.displayName, 'Fast', 'committed while the other hook is held');
      assert.equal(s.store.writeTransactions, transactions + 1, 'the held request has no transaction open');
      assert.equal((await s.store.health()).queuedWrites, 0, 'no write waits behind the held hook');
      assert.equal((await s.store.reader.getEntity('slow'))!.meta.displayName, '');
      gate.release();
      await slow;
      assert.equal((await s.store.reader.getEntity('slow'))!.meta.displayName, 'Slow');
      assert.equal(s.engine.locks.size, 0, 'every subject lock is freed');
    });

    it('serialises requests on the same subject: the second loads what the first committed', async (t) => {
      const gate = new Gate();
      const seen: string[] = [];
      const record: TestHook = (p) => (
        seen.push(`${p.hook}:${(p.subject as Entity).meta.displayName}`),
        { subject: p.subject, state: p.context.state }
      );
      const s = await setup(
        [
          { name: 'slow', hooks: { preEntityUpdate: gate.hook((p) => (p.subject as Entity).meta.displayName === '') } },
          { name: 'rec', hooks: { preEntityUpdate: record, postEntityUpdate: record } },
        ],
        t,
      );
      await s.identity.createEntity(INFO, { id: 'alice' });
      const first = s.identity.updateEntityMeta(INFO, 'alice', { displayName: 'First' });
      await gate.entered;
      const second = s.identity.updateEntityMeta(INFO, 'alice', { displayName: 'Second' });
      // Another subject goes through meanwhile: only alice's requests wait.
      await s.identity.createEntity(INFO, { id: 'bob' });
      assert.deepEqual(seen, [], 'the second request has not started its hooks');
      gate.release();
      await Promise.all([first, second]);
      assert.deepEqual(seen, ['preEntityUpdate:', 'postEntityUpdate:First', 'preEntityUpdate:First', 'postEntityUpdate:Second']);
      assert.equal((await s.store.reader.getEntity('alice'))!.meta.displayName, 'Second');
    });

    it('keeps per-subject order: concurrent changes of one subject commit in the order they came', async (t) => {
      // Each hook yields a different number of times, so without the lock later requests would overtake earlier ones.
      const jitter: TestHook = async (p) => {
        const value = (p.request as { change: { key: string } }).change.key;
        for (let i = 0; i < 10 - Number(value.slice(1)); i++) await new Promise<void>((resolve) => setImmediate(resolve));
        return { subject: p.subject, state: p.context.state };
      };
      const s = await setup([{ name: 'jitter', hooks: { preEntityUpdate: jitter, postEntityUpdate: jitter } }], t);
      await s.identity.createEntity(INFO, { id: 'alice' });
      const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
      await Promise.all(keys.map((key) => s.identity.entityKv(INFO, 'alice', { action: 'add', key, values: [key] })));
      assert.deepEqual(Object.keys((await s.store.reader.getEntity('alice'))!.meta.kv), keys);
      const kvEvents = (await s.store.outbox.eventsAfter(0, 1000)).filter((e) => e.operation === 'entity.kv');
      assert.deepEqual(
        kvEvents.map((e) => (e.request as { change: { key: string } }).change.key),
        keys,
        'events in request order',
      );
    });

    it('writes nothing and emits no event when any stage fails: PRE, the change, POST, the commit', async (t) => {
      const s = await setup([{ name: 'guard', hooks: { preEntityUpdate: veto('no'), postGroupUpdate: veto('not this either') } }], t);
      await s.identity.createEntity(INFO, { id: 'root', capabilities: ['GLOBAL_ROOT'] });
      await s.identity.createGroup(INFO, { name: 'staff' });
      const before = await events(s.store);
      await refusedWithoutChange(s.store, () => s.identity.updateEntityMeta(INFO, 'root', { shell: '/bin/sh' }), 'KH_ERR_PLUGIN_VETO');
      await refusedWithoutChange(
        s.store,
        () => s.identity.groupKv(INFO, 'staff', { action: 'delete', key: 'missing' }),
        'KH_ERR_KV_KEY_NOT_FOUND',
      );
      await refusedWithoutChange(
        s.store,
        () => s.identity.groupKv(INFO, 'staff', { action: 'add', key: 'k', values: [] }),
        'KH_ERR_PLUGIN_VETO',
      );
      // Caught only at commit, against the data as committed: the last unlocked GLOBAL_ROOT holder.
      await refusedWithoutChange(s.store, () => s.identity.lockEntity(INFO, 'root'), 'KH_ERR_LAST_ROOT');
      assert.deepEqual(await events(s.store), before);
      assert.equal(s.engine.locks.size, 0);
    });

    it('refuses with KH_ERR_CONFLICT, writing nothing, when another process changed the subject while its hooks ran', async (t) => {
      const gate = new Gate();
      const s = await setup([{ name: 'slow', hooks: { postEntityUpdate: gate.hook() } }], t);
      await s.identity.createEntity(INFO, { id: 'alice' });
      const update = s.identity.updateEntityMeta(INFO, 'alice', { displayName: 'Mine' });
      await gate.entered;
      // Another server process on the same database: its own connection, its own engine.
      const other = await s.site.open();
      try {
        await new Identity(other, new LifecycleEngine(other, new TestDispatcher([])), { hash: FAST_HASH }).updateEntityMeta(INFO, 'alice', {
          displayName: 'Theirs',
        });
      } finally {
        await other.close();
      }
      const before = await snapshot(s.store);
      const eventsBefore = await events(s.store);
      gate.release();
      const err = await rejectsWith(update, 'KH_ERR_CONFLICT', /entity "alice" was changed by another request/);
      assert.equal(err.status, 409);
      assert.deepEqual(await snapshot(s.store), before);
      assert.deepEqual(await events(s.store), eventsBefore);
      assert.equal((await s.store.reader.getEntity('alice'))!.meta.displayName, 'Theirs');
      assert.equal(
        s.dispatcher.calls.filter((c) => c === 'slow:postEntityUpdate').length,
        1,
        'the hooks ran once: a conflict is not re-run',
      );
    });

    it('writes the next free number when another process took the one chosen for a create while its hooks ran', async (t) => {
      const gate = new Gate();
      const s = await setup([{ name: 'slow', hooks: { postEntityCreate: gate.hook() } }], t);
      const create = s.identity.createEntity(INFO, { id: 'alice' });
      await gate.entered;
      const other = await s.site.open();
      try {
        // The other server picks the same next number: the first server's choice is not written yet.
        const bob = await new Identity(other, new LifecycleEngine(other, new TestDispatcher([])), { hash: FAST_HASH }).createEntity(INFO, {
          id: 'bob',
        });
        assert.equal(bob.number, 1);
      } finally {
        await other.close();
      }
      gate.release();
      const alice = await create;
      assert.equal(alice.number, 2, 'the answer carries the number written');
      assert.equal((await s.store.reader.getEntity('alice'))!.number, 2);
      const created = (await s.store.outbox.eventsAfter(0, 1000)).filter((e) => e.point === 'EntityCreate' && e.subjectKey === 'alice');
      assert.deepEqual(
        created.map((e) => (e.after as Entity).number),
        [2],
        'the committed event too',
      );
    });

    it('AuthCheck opens no write transaction unless something changed', async (t) => {
      const s = await setup([], t);
      await s.identity.createEntity(INFO, { id: 'alice', secret: 'pw' });
      // The event subscriber makes every step write an event; without one, a login writes nothing.
      const quiet = new LifecycleEngine(s.store, new TestDispatcher([]));
      const identity = new Identity(s.store, quiet, { hash: FAST_HASH });
      const transactions = s.store.writeTransactions;
      await identity.authCheck(INFO, 'alice', 'pw');
      await rejectsWith(identity.authCheck(INFO, 'alice', 'wrong'), 'KH_ERR_AUTH_FAILED');
      assert.equal(s.store.writeTransactions, transactions);
      // A hash below today's parameters is upgraded: that login writes.
      await new Identity(s.store, quiet, { hash: { ...FAST_HASH, timeCost: 2 } }).authCheck(INFO, 'alice', 'pw');
      assert.equal(s.store.writeTransactions, transactions + 1);
    });

    it('counts the deadline from arrival: a request that waits for its subject past it fails naming no plugin, writing nothing', async (t) => {
      const gate = new Gate();
      const deadlines: number[] = [];
      const seeDeadline: TestHook = (p) => (deadlines.push(p.context.deadline), { subject: p.subject, state: p.context.state });
      const s = await setup([{ name: 'slow', hooks: { preEntityLock: gate.hook(), preEntityUpdate: seeDeadline } }], t);
      await s.identity.createEntity(INFO, { id: 'alice' });
      const arrivedAt = Date.now() - 5_000;
      await s.identity.updateEntityMeta({ ...INFO, arrivedAt }, 'alice', { shell: '/bin/sh' });
      assert.deepEqual(deadlines, [arrivedAt + REQUEST_DEADLINE_MS], 'context.deadline is arrival + REQUEST_DEADLINE_MS');
      const lock = s.identity.lockEntity(INFO, 'alice');
      await gate.entered;
      const before = await snapshot(s.store);
      const late = { ...INFO, arrivedAt: Date.now() - REQUEST_DEADLINE_MS + 50 };
      const err = await rejectsWith(
        s.identity.updateEntityMeta(late, 'alice', { shell: '/bin/zsh' }),
        'KH_ERR_REQUEST_DEADLINE',
        /waited for other requests on entity "?alice/,
      );
      assert.equal(err.status, 504);
      assert.doesNotMatch(err.message, /plugin/);
      assert.equal(deadlines.length, 1, 'no hook ran for the late request');
      assert.deepEqual(await snapshot(s.store), before);
      gate.release();
      await lock;
      // The entry of the waiter that gave up goes once the holder's does, a few microtasks later.
      await new Promise<void>((resolve) => setImmediate(resolve));
      assert.equal(s.engine.locks.size, 0);
    });
  });
});
