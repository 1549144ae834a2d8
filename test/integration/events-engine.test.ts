// The committed stage through the real engine, store and outbox, with in-process subscribers: an
// event per committed step, none for an aborted request, delivered after the commit, in order,
// at least once (retries, dead letters, retry and skip), resumed after a restart, pruned when old.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { Entity } from 'keyhold-plugin-sdk';
import { Outbox } from '../../src/events/outbox.js';
import type { OutboxSettings } from '../../src/events/settings.js';
import { Identity } from '../../src/identity/identity.js';
import { PluginCallError, type HookDispatcher } from '../../src/lifecycle/dispatcher.js';
import { LifecycleEngine, serverRequest } from '../../src/lifecycle/engine.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { TestSubscriber } from '../support/event-subscriber.js';
import { FAST_HASH, rejectsWith, TestDispatcher, veto, type TestPlugin } from '../support/identity-harness.js';

const dir = mkdtempSync(join(tmpdir(), 'keyhold-events-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

const FAST: OutboxSettings = {
  retentionMs: 60_000,
  maxAttempts: 3,
  retryInitialDelayMs: 1,
  retryMaxDelayMs: 5,
  leaseTtlMs: 10_000,
  leaseRenewMs: 3_000,
};

interface Setup {
  store: SqliteStore;
  outbox: Outbox;
  identity: Identity;
  file: string;
  close(): Promise<void>;
}

/** A store (a file, so a test can open it again), an outbox delivering to `subscribers`, the engine and identity on top. */
async function open(
  subscribers: TestSubscriber[],
  options: { plugins?: TestPlugin[]; settings?: Partial<OutboxSettings>; file?: string } = {},
): Promise<Setup> {
  const file = options.file ?? join(dir, `events-${++files}.sqlite`);
  const store = SqliteStore.open(file);
  const dispatcher: HookDispatcher = Object.assign(new TestDispatcher(options.plugins ?? []), { subscribers });
  const outbox = new Outbox({
    store,
    settings: { ...FAST, ...options.settings },
    logger: pino({ level: 'silent' }),
    registry: new Registry(),
  });
  const engine = new LifecycleEngine(store, dispatcher, () => outbox.wake());
  await outbox.use(subscribers);
  return {
    store,
    outbox,
    identity: new Identity(store, engine, { hash: FAST_HASH }),
    file,
    close: async () => {
      await outbox.stop();
      await store.close();
    },
  };
}

const info = (requestId: string) => ({ ...serverRequest(requestId), caller: 'root' });

describe('committed events through the engine', () => {
  it('an accepted change is delivered once to each plugin that declared its hook, after the commit, without a secret', async (t) => {
    const all = new TestSubscriber('all');
    const groupsOnly = new TestSubscriber('groups-only', ['committedGroupCreate']);
    const s = await open([all, groupsOnly]);
    t.after(() => s.close());
    // What a plugin reads when it gets the event: the change must already be committed.
    const seenInStore: (string | null)[] = [];
    all.behaviour = async ({ event }) => {
      seenInStore.push((await s.store.reader.getEntity(event.subjectKey))?.meta.displayName ?? null);
    };

    await s.identity.createEntity(info('r-create'), { id: 'alice', secret: 'Alice-Secret-2026' });
    await s.identity.updateEntityMeta(info('r-update'), 'alice', { displayName: 'Alice' });
    await all.untilDelivered(3);

    assert.deepEqual(
      all.delivered.map((e) => [e.point, e.operation, e.subjectKind, e.subjectKey, e.requestId, e.caller]),
      [
        ['EntityCreate', 'entity.create', 'entity', 'alice', 'r-create', 'root'],
        ['SecretChange', 'entity.set-secret', 'entity', 'alice', 'r-create', 'root'],
        ['EntityUpdate', 'entity.update-meta', 'entity', 'alice', 'r-update', 'root'],
      ],
    );
    const [created, secret, updated] = all.delivered as [CommittedEventOfEntity, CommittedEventOfEntity, CommittedEventOfEntity];
    assert.equal(created.before, null);
    assert.equal(created.after!.id, 'alice');
    assert.deepEqual(secret.request, {}, 'the plain-text secret is not in the event');
    assert.equal(updated.before!.meta.displayName, '');
    assert.equal(updated.after!.meta.displayName, 'Alice');
    assert.deepEqual(updated.request, { patch: { displayName: 'Alice' } });
    assert.ok(created.seq < secret.seq && secret.seq < updated.seq);
    for (const event of all.delivered) {
      assert.equal((event.after as Entity).secret, '');
      assert.doesNotMatch(JSON.stringify(event), /argon2|Alice-Secret-2026/);
    }
    assert.ok(!seenInStore.includes(null), 'each event found its entity committed');
    assert.equal(seenInStore[2], 'Alice', 'the update was committed when its event came');
    assert.deepEqual(
      all.attempts.map((a) => a.attempt),
      [1, 1, 1],
      'each delivered once',
    );
    assert.deepEqual(groupsOnly.attempts, [], 'a plugin gets only the points it declared');

    await s.identity.createGroup(info('r-group'), { name: 'staff' });
    await groupsOnly.untilDelivered(1);
    await all.untilDelivered(4);
    assert.equal(groupsOnly.delivered[0]!.subjectKind, 'group');
    assert.equal(groupsOnly.delivered[0]!.seq, all.delivered[3]!.seq);
  });

  it('a vetoed or failed request writes no event and delivers nothing', async (t) => {
    const all = new TestSubscriber('all');
    const plugins: TestPlugin[] = [
      { name: 'policy', hooks: { preGroupCreate: veto('no groups today'), postEntityLock: veto('no locks either') } },
    ];
    const s = await open([all], { plugins });
    t.after(() => s.close());
    await s.identity.createEntity(info('r1'), { id: 'alice' });
    await all.untilDelivered(1);

    await rejectsWith(s.identity.createGroup(info('vetoed-pre'), { name: 'staff' }), 'KH_ERR_PLUGIN_VETO');
    await rejectsWith(s.identity.lockEntity(info('vetoed-post'), 'alice'), 'KH_ERR_PLUGIN_VETO');
    await rejectsWith(s.identity.createEntity(info('exists'), { id: 'alice' }), 'KH_ERR_ENTITY_EXISTS');
    await rejectsWith(s.identity.addMember(info('no-group'), 'nowhere', 'alice'), 'KH_ERR_GROUP_NOT_FOUND');
    await rejectsWith(s.identity.authCheck(info('wrong-secret'), 'alice', 'wrong'), 'KH_ERR_AUTH_FAILED');
    await s.identity.updateEntityMeta(info('r2'), 'alice', { shell: '/bin/sh' });
    await all.untilDelivered(2);

    const stored = await s.store.outbox.eventsAfter(0, 100);
    assert.deepEqual(
      stored.map((e) => e.requestId),
      ['r1', 'r2'],
      'only the committed requests left events',
    );
    assert.deepEqual(
      all.attempts.map((a) => a.event.requestId),
      ['r1', 'r2'],
    );
  });

  it('writes no event for a point no plugin declared', async (t) => {
    const groupsOnly = new TestSubscriber('groups-only', ['committedGroupCreate']);
    const s = await open([groupsOnly]);
    t.after(() => s.close());
    await s.identity.createEntity(info('r1'), { id: 'alice', secret: 'Alice-Secret-2026' });
    await s.identity.authCheck(info('login'), 'alice', 'Alice-Secret-2026');
    assert.deepEqual(await s.store.outbox.eventsAfter(0, 100), [], 'entity changes and logins cost no outbox write');
    await s.identity.createGroup(info('r2'), { name: 'staff' });
    assert.equal((await s.store.outbox.eventsAfter(0, 100)).length, 1);
  });

  it('delivers in commit order, per subject too, over many concurrent writes', async (t) => {
    const all = new TestSubscriber('all', ['committedEntityUpdate']);
    const s = await open([all]);
    t.after(() => s.close());
    const ids = ['alice', 'bob', 'carol'];
    for (const id of ids) await s.identity.createEntity(info(`create-${id}`), { id });
    const writes = 30;
    await Promise.all(
      Array.from({ length: writes * ids.length }, (_, i) =>
        s.identity.updateEntityMeta(info(`u${i}`), ids[i % ids.length]!, { displayName: `v${Math.floor(i / ids.length)}` }),
      ),
    );
    await all.untilDelivered(writes * ids.length);

    const seqs = all.delivered.map((e) => e.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
      'in seq order',
    );
    assert.equal(new Set(seqs).size, seqs.length, 'each once');
    for (const id of ids) {
      const mine = all.delivered.filter((e) => e.subjectKey === id) as CommittedEventOfEntity[];
      for (let i = 1; i < mine.length; i++)
        assert.equal(
          mine[i]!.before!.meta.displayName,
          mine[i - 1]!.after!.meta.displayName,
          `${id}: each event starts where the one before ended`,
        );
      assert.equal(
        mine.at(-1)!.after!.meta.displayName,
        (await s.store.reader.getEntity(id))!.meta.displayName,
        `${id}: the last event is the committed state`,
      );
    }
  });

  it('retries a failing delivery, dead-letters it after maxAttempts and goes on; retry delivers it, skip drops it', async (t) => {
    const all = new TestSubscriber('all', ['committedEntityCreate']);
    const s = await open([all]);
    t.after(() => s.close());
    const failing = new Set(['doomed', 'dropped']);
    all.behaviour = ({ event, attempt }) => {
      if (event.subjectKey === 'flaky' && attempt < 3) throw new PluginCallError('crash', `flaky attempt ${attempt}`);
      if (failing.has(event.subjectKey)) throw new PluginCallError('timeout', 'no answer within 1 ms');
    };
    for (const id of ['flaky', 'doomed', 'dropped', 'fine']) await s.identity.createEntity(info(id), { id });
    await all.untilDelivered(2);

    assert.deepEqual(
      all.attempts.map((a) => `${a.event.subjectKey}#${a.attempt}`),
      ['flaky#1', 'flaky#2', 'flaky#3', 'doomed#1', 'doomed#2', 'doomed#3', 'dropped#1', 'dropped#2', 'dropped#3', 'fine#1'],
      'retried until taken or maxAttempts (3), in order',
    );
    const dead = await s.outbox.list({ dead: true });
    assert.deepEqual(
      dead.events.map((e) => [e.subjectKey, e.deadLetters.map((l) => [l.plugin, l.attempts, l.lastError])]),
      [
        ['doomed', [['all', 3, 'no answer within 1 ms']]],
        ['dropped', [['all', 3, 'no answer within 1 ms']]],
      ],
    );
    assert.deepEqual(
      dead.subscribers.map((x) => [x.plugin, x.deadLetters]),
      [['all', 2]],
    );
    const [doomed, dropped] = dead.events.map((e) => e.seq) as [number, number];

    const stillFailing = await rejectsWith(
      s.outbox.retry(doomed),
      'KH_ERR_EVENT_DELIVERY_FAILED',
      /plugin "all" failed to take event \d+ again: no answer/,
    );
    assert.equal(stillFailing.status, 502);
    assert.equal((await s.store.outbox.deadLetters({ seq: doomed }))[0]!.attempts, 4);
    failing.delete('doomed');
    await s.outbox.retry(doomed, 'all');
    assert.deepEqual(await s.store.outbox.deadLetters({ seq: doomed }), []);
    assert.equal(all.delivered.at(-1)!.subjectKey, 'doomed');
    assert.equal(all.attempts.at(-1)!.attempt, 5);

    await s.outbox.skip(dropped);
    assert.deepEqual(await s.store.outbox.deadLetters(), []);
    await rejectsWith(s.outbox.skip(dropped), 'KH_ERR_DEAD_LETTER_NOT_FOUND');
    await rejectsWith(s.outbox.retry(dropped, 'someone-else'), 'KH_ERR_DEAD_LETTER_NOT_FOUND', /of plugin "someone-else"/);
    await rejectsWith(s.outbox.retry(999_999), 'KH_ERR_EVENT_NOT_FOUND');
    assert.equal(all.delivered.filter((e) => e.subjectKey === 'dropped').length, 0, 'skipped: never delivered');
  });

  it('a plugin that is down pauses delivery without using attempts, and resumes as soon as it is ready', async (t) => {
    const all = new TestSubscriber('all', ['committedEntityCreate']);
    // Backoff far longer than the test: only pluginReady() can end the pause in time.
    const s = await open([all], { settings: { retryInitialDelayMs: 3_600_000, retryMaxDelayMs: 3_600_000 } });
    t.after(() => s.close());
    let down = true;
    all.behaviour = () => {
      if (down) throw new PluginCallError('unavailable', 'the plugin is restarting after a crash');
    };
    await s.identity.createEntity(info('r1'), { id: 'alice' });
    await all.until('the first attempt', () => all.attempts.length === 1);
    down = false;
    s.outbox.pluginReady('all');
    await all.untilDelivered(1);
    assert.deepEqual(
      all.attempts.map((a) => a.attempt),
      [1, 1],
      'being down used no attempt',
    );
    assert.deepEqual(await s.store.outbox.deadLetters(), []);
  });

  it('resumes after a restart from the stored cursor; a plugin seen for the first time starts at the last event', async (t) => {
    const first = new TestSubscriber('audit');
    const s1 = await open([first]);
    await s1.identity.createEntity(info('a'), { id: 'a' });
    await s1.identity.createEntity(info('b'), { id: 'b' });
    await first.untilDelivered(2);
    await s1.outbox.stop();
    // Committed while nothing delivers (the server is going down).
    await s1.identity.createEntity(info('c'), { id: 'c' });
    await s1.store.close();

    const again = new TestSubscriber('audit');
    const newcomer = new TestSubscriber('newcomer');
    const s2 = await open([again, newcomer], { file: s1.file });
    t.after(() => s2.close());
    await again.untilDelivered(1);
    assert.deepEqual(
      again.delivered.map((e) => e.requestId),
      ['c'],
      'only what was not delivered before the restart',
    );
    await s2.identity.createEntity(info('d'), { id: 'd' });
    await again.untilDelivered(2);
    await newcomer.untilDelivered(1);
    assert.deepEqual(
      newcomer.delivered.map((e) => e.requestId),
      ['d'],
      'no replay of history for a new plugin',
    );
  });

  it('deletes delivered events older than the retention; keeps those still pending or dead-lettered', async (t) => {
    const all = new TestSubscriber('all', ['committedEntityCreate', 'committedGroupCreate']);
    const groups = new TestSubscriber('groups', ['committedGroupCreate']);
    groups.behaviour = () => {
      throw new PluginCallError('unavailable', 'down for the whole test');
    };
    all.behaviour = ({ event }) => {
      if (event.subjectKey === 'doomed') throw new Error('refused');
    };
    const s = await open([all, groups], { settings: { retentionMs: 60_000 } });
    t.after(() => s.close());
    for (const id of ['old', 'doomed', 'older']) await s.identity.createEntity(info(id), { id });
    await s.identity.createGroup(info('staff'), { name: 'staff' });
    await s.identity.createEntity(info('newest'), { id: 'newest' });
    await all.untilDelivered(4);
    await s.outbox.stop(); // writes the cursors the pruning goes by

    const keys = async () => (await s.store.outbox.eventsAfter(0, 100)).map((e) => e.subjectKey);
    assert.equal(await s.outbox.prune(), 0, 'nothing is older than the retention yet');
    assert.equal(await s.outbox.prune(Date.now() + 120_000), 2);
    assert.deepEqual(
      await keys(),
      ['doomed', 'staff', 'newest'],
      'the dead letter, the event "groups" still waits for, and what comes after it stay',
    );
  });
});

type CommittedEventOfEntity = import('keyhold-plugin-sdk').CommittedEvent<Entity>;
