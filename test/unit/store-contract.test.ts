import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import Database from 'better-sqlite3';
import { encodeEntity, encodeGroup, parseEntity, parseGroup, type Entity, type RequestProvenance } from 'keyhold-plugin-sdk';
import { MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { eventFrom, type EventRow } from '../../src/store/event-rows.js';
import type { NewEvent } from '../../src/store/outbox.js';
import { PG_MIGRATIONS } from '../../src/store/postgres/migrations.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import type { Store, StoreTransaction } from '../../src/store/store.js';
import { rejectsWith } from '../support/identity-harness.js';
import { forEachStore, freshDatabaseUrl, postgresSkip } from '../support/stores.js';

const entity = (id: string, fields: { number?: number; displayName?: string; legalName?: string } = {}): Entity =>
  parseEntity({ id, number: fields.number ?? 0, meta: { displayName: fields.displayName ?? '', legalName: fields.legalName ?? '' } });

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'keyhold-store-test-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

forEachStore((kind, openStore) => {
  describe('holders of a capability', () => {
    it('follows every write of an entity or group, and deletes with it', async () => {
      const store = await openStore();
      try {
        const root = parseEntity({ id: 'root', meta: { capabilities: ['GLOBAL_ROOT', 'LOCK_ENTITY'] } });
        await store.write(async (tx) => {
          await tx.insertEntity(root);
          await tx.insertEntity(parseEntity({ id: 'plain' }));
          await tx.insertGroup(parseGroup({ name: 'admins', capabilities: ['GLOBAL_ROOT'] }));
          await tx.insertGroup(parseGroup({ name: 'lockers', capabilities: ['LOCK_ENTITY'] }));
        });
        assert.deepEqual(await store.reader.entitiesWithCapability('GLOBAL_ROOT'), ['root']);
        assert.deepEqual(await store.reader.entitiesWithCapability('LOCK_ENTITY'), ['root']);
        assert.deepEqual(await store.reader.groupsWithCapability('GLOBAL_ROOT'), ['admins']);
        await store.write(async (tx) => {
          await tx.updateEntity({ ...root, meta: { ...root.meta, capabilities: ['LOCK_ENTITY'] } });
          await tx.updateGroup(parseGroup({ name: 'lockers', capabilities: ['GLOBAL_ROOT'] }));
        });
        assert.deepEqual(await store.reader.entitiesWithCapability('GLOBAL_ROOT'), []);
        assert.deepEqual(await store.reader.groupsWithCapability('GLOBAL_ROOT'), ['admins', 'lockers']);
        assert.deepEqual(await store.reader.groupsWithCapability('LOCK_ENTITY'), []);
        await store.write(async (tx) => {
          await tx.deleteEntity('root');
          await tx.deleteGroup('admins');
        });
        assert.deepEqual(await store.reader.entitiesWithCapability('LOCK_ENTITY'), []);
        assert.deepEqual(await store.reader.groupsWithCapability('GLOBAL_ROOT'), ['lockers']);
      } finally {
        await store.close();
      }
    });
  });

  describe('entities', () => {
    let store: Store;
    before(async () => {
      store = await openStore();
    });
    after(() => store.close());

    it('round-trips every field, keeps the secret hash out of the object, and fills groups from memberships', async () => {
      const full = parseEntity({
        id: 'roundtrip',
        meta: {
          displayName: 'R T',
          legalName: 'Round Trip',
          shell: '/bin/zsh',
          locked: true,
          capabilities: ['LOCK_ENTITY', 'CREATE_GROUP'],
          keys: ['ssh-ed25519 AAAA x'],
          untypedMeta: ['a:1', 'b:2'],
          kv: { phone: { values: ['1', '2'] } },
        },
      });
      await store.write(async (tx) => {
        await tx.insertEntity({ ...full, secret: 'ignored: only setSecretHash writes a hash' });
        await tx.setSecretHash('roundtrip', '$argon2id$fake');
        await tx.insertGroup(parseGroup({ name: 'zeta' }));
        await tx.insertGroup(parseGroup({ name: 'alpha' }));
        await tx.addMembership('roundtrip', 'zeta');
        await tx.addMembership('roundtrip', 'alpha');
      });
      const back = await store.reader.getEntity('roundtrip');
      assert.ok(back);
      assert.deepEqual(back, { ...full, number: back.number, meta: { ...full.meta, groups: ['alpha', 'zeta'] } });
      assert.equal(await store.reader.secretHash('roundtrip'), '$argon2id$fake');
      assert.equal(await store.reader.secretHash('nobody'), undefined);
      const version = await store.reader.version({ kind: 'entity', key: 'roundtrip' });
      assert.deepEqual(
        await store.reader.loginRecord('roundtrip'),
        { entity: back, secretHash: '$argon2id$fake', version },
        'one read: entity, hash, version',
      );
      assert.equal(await store.reader.loginRecord('nobody'), undefined);
    });

    it('numbers automatically from the highest number in use', async () => {
      const [a, b, c] = await store.write(async (tx) => [
        await tx.insertEntity(entity('n1')),
        await tx.insertEntity(entity('n2', { number: 500 })),
        await tx.insertEntity(entity('n3')),
      ]);
      assert.equal(b!.number, 500);
      assert.equal(c!.number, 501);
      assert.ok(a!.number > 0 && a!.number < 500);
    });

    it('maps duplicate ids and numbers to their codes and writes nothing', async () => {
      await store.write((tx) => tx.insertEntity(entity('dup', { number: 9000 })));
      await rejectsWith(
        store.write((tx) => tx.insertEntity(entity('dup'))),
        'KH_ERR_ENTITY_EXISTS',
        /an entity "dup" already exists/,
      );
      await rejectsWith(
        store.write((tx) => tx.insertEntity(entity('other', { number: 9000 }))),
        'KH_ERR_NUMBER_TAKEN',
        /entity number 9000 is already in use/,
      );
      assert.equal(await store.reader.getEntity('other'), undefined);
    });

    it('updates, and deletes with memberships; missing rows are not-found errors', async () => {
      await store.write(async (tx) => {
        await tx.insertEntity(entity('upd'));
        await tx.insertGroup(parseGroup({ name: 'upd-group' }));
        await tx.addMembership('upd', 'upd-group');
      });
      const current = (await store.reader.getEntity('upd'))!;
      const version = await store.reader.version({ kind: 'entity', key: 'upd' });
      await store.write((tx) => tx.updateEntity({ ...current, secret: 'h', meta: { ...current.meta, displayName: 'Updated' } }));
      assert.equal((await store.reader.getEntity('upd'))?.meta.displayName, 'Updated');
      assert.equal(await store.reader.secretHash('upd'), '', 'updateEntity never writes the hash');
      assert.ok((await store.reader.version({ kind: 'entity', key: 'upd' }))! > version!, 'an update moves the version');
      await store.write((tx) => tx.deleteEntity('upd'));
      assert.equal(await store.reader.getEntity('upd'), undefined);
      assert.deepEqual(await store.reader.directMembers('upd-group'), []);
      await rejectsWith(
        store.write((tx) => tx.updateEntity(current)),
        'KH_ERR_ENTITY_NOT_FOUND',
      );
      await rejectsWith(
        store.write((tx) => tx.deleteEntity('upd')),
        'KH_ERR_ENTITY_NOT_FOUND',
      );
      await rejectsWith(
        store.write((tx) => tx.removeMembership('n1', 'upd-group')),
        'KH_ERR_NOT_A_MEMBER',
      );
    });

    it('searches id, display and legal name case-insensitively, literally, in pages', async () => {
      await store.write(async (tx) => {
        await tx.insertEntity(entity('s-ann', { displayName: 'Ann Smith' }));
        await tx.insertEntity(entity('s-bob', { legalName: 'Robert SMITHSON' }));
        await tx.insertEntity(entity('s-cat', { displayName: '100% cat' }));
        await tx.insertEntity(entity('s_dog'));
      });
      const ids = async (text: string, extra: { limit?: number; after?: string } = {}) =>
        (await store.reader.searchEntities({ text, ...extra })).map((e) => e.id);
      assert.deepEqual(await ids('smith'), ['s-ann', 's-bob']);
      assert.deepEqual(await ids('%'), ['s-cat']);
      assert.deepEqual(await ids('s_'), ['s_dog']);
      assert.deepEqual(await ids('s-', { limit: 2 }), ['s-ann', 's-bob']);
      assert.deepEqual(await ids('s-', { after: 's-bob' }), ['s-cat']);
      assert.ok((await store.reader.countEntities()) >= 4);
    });
  });

  describe('groups', () => {
    let store: Store;
    before(async () => {
      store = await openStore();
    });
    after(() => store.close());

    it('keeps expansions in order, answers who expands and who manages a group, and enforces names and numbers', async () => {
      await store.write(async (tx) => {
        await tx.insertGroup(parseGroup({ name: 'staff', number: 100 }));
        await tx.insertGroup(parseGroup({ name: 'contractors' }));
        await tx.insertGroup(
          parseGroup({
            name: 'everyone',
            managedBy: 'staff',
            expansions: [
              { mode: 'INCLUDE', group: 'staff' },
              { mode: 'EXCLUDE', group: 'contractors' },
            ],
            kv: { k: { values: ['v'] } },
          }),
        );
      });
      const everyone = await store.reader.getGroup('everyone');
      assert.deepEqual(everyone?.expansions, [
        { mode: 'INCLUDE', group: 'staff' },
        { mode: 'EXCLUDE', group: 'contractors' },
      ]);
      assert.equal(everyone?.managedBy, 'staff');
      assert.deepEqual(everyone?.kv, { k: { values: ['v'] } });
      assert.equal((await store.reader.getGroup('contractors'))?.number, 101);
      assert.deepEqual(await store.reader.groupsExpanding('staff'), ['everyone']);
      assert.deepEqual(await store.reader.groupsManagedBy('staff'), ['everyone']);
      await rejectsWith(
        store.write((tx) => tx.insertGroup(parseGroup({ name: 'staff' }))),
        'KH_ERR_GROUP_EXISTS',
      );
      await rejectsWith(
        store.write((tx) => tx.insertGroup(parseGroup({ name: 'new', number: 100 }))),
        'KH_ERR_NUMBER_TAKEN',
      );
    });

    it('refuses in the database to delete a group others expand or are managed by, naming them', async () => {
      const err = await rejectsWith(
        store.write((tx) => tx.deleteGroup('staff')),
        'KH_ERR_GROUP_IN_USE',
        /everyone/,
      );
      assert.deepEqual(err.details, { groups: ['everyone'] });
      assert.ok(await store.reader.getGroup('staff'));
      await store.write(async (tx) => {
        await tx.insertGroup(parseGroup({ name: 'self-managed', managedBy: 'self-managed' }));
        await tx.deleteGroup('self-managed');
        await tx.deleteGroup('everyone');
        await tx.deleteGroup('staff');
      });
      assert.deepEqual(await store.reader.groupsExpanding('contractors'), []);
    });

    it('replaces expansions on update', async () => {
      await store.write(async (tx) => {
        await tx.insertGroup(parseGroup({ name: 'a' }));
        await tx.insertGroup(parseGroup({ name: 'b', expansions: [{ mode: 'INCLUDE', group: 'a' }] }));
        await tx.updateGroup(parseGroup({ name: 'b', displayName: 'B', expansions: [{ mode: 'EXCLUDE', group: 'contractors' }] }));
      });
      const b = await store.reader.getGroup('b');
      assert.equal(b?.displayName, 'B');
      assert.deepEqual(b?.expansions, [{ mode: 'EXCLUDE', group: 'contractors' }]);
      assert.deepEqual(await store.reader.groupsExpanding('a'), []);
    });
  });

  describe('transactions', () => {
    let store: Store;
    before(async () => {
      store = await openStore();
    });
    after(() => store.close());

    it('rolls back everything when the work rejects', async () => {
      await assert.rejects(
        store.write(async (tx) => {
          await tx.insertEntity(entity('rolled-back'));
          throw new Error('abort');
        }),
        /abort/,
      );
      assert.equal(await store.reader.getEntity('rolled-back'), undefined);
      assert.equal(await store.reader.countEntities(), 0);
    });

    it('reads committed data only on the reader, the transaction own writes inside it', async () => {
      await store.write(async (tx) => {
        await tx.insertEntity(entity('pending'));
        assert.ok(await tx.getEntity('pending'));
        assert.equal(await store.reader.getEntity('pending'), undefined);
        // A write queued now must not start (and see or disturb this one) before it commits.
        await new Promise((resolve) => setImmediate(resolve));
        assert.equal(await store.reader.getEntity('pending'), undefined);
      });
      assert.ok(await store.reader.getEntity('pending'));
    });

    it('runs writes one at a time, in the order asked, even when they await in between', async () => {
      const events: string[] = [];
      const slow = (name: string, ticks: number) =>
        store.write(async (tx) => {
          events.push(`${name} start`);
          for (let i = 0; i < ticks; i++) await new Promise((resolve) => setImmediate(resolve));
          await tx.insertEntity(entity(name));
          events.push(`${name} end`);
        });
      const failing = store.write(async () => {
        events.push('failing start');
        throw new Error('fails');
      });
      // w1 awaits several turns of the event loop mid-transaction: unserialised, w2 and w3 would start inside it.
      await Promise.all([failing.catch(() => undefined), slow('w1', 5), slow('w2', 1), slow('w3', 0)]);
      assert.deepEqual(events, ['failing start', 'w1 start', 'w1 end', 'w2 start', 'w2 end', 'w3 start', 'w3 end']);
      assert.deepEqual(
        (await store.reader.searchEntities({ text: 'w' })).map((e) => e.id),
        ['w1', 'w2', 'w3'],
      );
    });

    it('never reports as committed a write whose refused statement was caught inside it', async () => {
      await store.write((tx) => tx.insertEntity(entity('taken')));
      const attempt = store.write(async (tx) => {
        await tx.insertEntity(entity('alongside'));
        await tx.insertEntity(entity('taken')).catch(() => undefined);
      });
      if (kind === 'postgres') {
        // A refused statement aborts a PostgreSQL transaction: the write fails whole.
        await assert.rejects(attempt, /had failed/);
        assert.equal(await store.reader.getEntity('alongside'), undefined);
      } else {
        // SQLite undoes the refused statement alone.
        await attempt;
        assert.ok(await store.reader.getEntity('alongside'));
      }
    });

    it('refuses a transaction object used after its transaction ended', async () => {
      let leaked: StoreTransaction | undefined;
      await store.write(async (tx) => {
        leaked = tx;
      });
      await assert.rejects(leaked!.insertEntity(entity('late')), /used after it ended/);
      assert.equal(await store.reader.getEntity('late'), undefined);
    });
  });
  describe('change counter, login throttle, outbox', () => {
    let store: Store;
    before(async () => {
      store = await openStore();
    });
    after(() => store.close());

    it('moves the change counter with every commit', async () => {
      const before = await store.changeCounter();
      assert.equal(await store.changeCounter(), before, 'reading changes nothing');
      await store.write((tx) => tx.insertEntity(entity('counted')));
      const afterCommit = await store.changeCounter();
      assert.notEqual(afterCommit, before);
      await store.write((tx) => tx.insertEntity(entity('counted-too')));
      assert.notEqual(await store.changeCounter(), afterCommit);
    });

    it('keeps throttle records and familiar addresses, and prunes them', async () => {
      await store.write(async (tx) => {
        await tx.putThrottleRecords([
          { key: 'a', failures: 1, lastFailure: 10, blockedUntil: 0 },
          { key: 'b', failures: 3, lastFailure: 20, blockedUntil: 500 },
        ]);
        await tx.putThrottleRecords([{ key: 'a', failures: 2, lastFailure: 15, blockedUntil: 0 }]);
        await tx.rememberLogin('counted', '10.0.0.1', 100);
        await tx.rememberLogin('no-such-entity', '10.0.0.1', 100);
      });
      assert.deepEqual(await store.reader.throttleRecords(['b', 'a', 'none']), [
        { key: 'b', failures: 3, lastFailure: 20, blockedUntil: 500 },
        { key: 'a', failures: 2, lastFailure: 15, blockedUntil: 0 },
      ]);
      assert.equal(await store.reader.lastLoginFrom('counted', '10.0.0.1'), 100);
      assert.equal(await store.reader.lastLoginFrom('no-such-entity', '10.0.0.1'), undefined);
      await store.write((tx) => tx.pruneLoginThrottle(100, 30, 200));
      assert.deepEqual(
        (await store.reader.throttleRecords(['a', 'b'])).map((r) => r.key),
        ['b'],
        'b is still blocked at 100',
      );
      assert.equal(await store.reader.lastLoginFrom('counted', '10.0.0.1'), undefined);
      await store.write((tx) => tx.deleteThrottleRecords(['b']));
      assert.deepEqual(await store.reader.throttleRecords(['b']), []);
    });

    it('numbers events in commit order, keeps cursors and dead letters, and prunes what every cursor passed', async () => {
      const event = (key: string, at: number): NewEvent => ({
        point: 'EntityUpdate',
        operation: 'entity.update-meta',
        subjectKind: 'entity',
        subjectKey: key,
        before: null,
        after: null,
        request: { key },
        requestId: `r-${key}`,
        caller: null,
        at: new Date(at).toISOString(),
      });
      const first = await store.write((tx) => tx.outbox.append(event('e1', 1000)));
      await store.write((tx) => tx.outbox.keepCursors(['p1']));
      const [second, third] = await store.write(async (tx) => [
        await tx.outbox.append(event('e2', 2000)),
        await tx.outbox.append(event('e3', 3000)),
      ]);
      assert.ok(first! < second! && second! < third!);
      assert.deepEqual((await store.outbox.cursors()).get('p1'), first, 'a new plugin starts at the last event');
      assert.deepEqual(
        (await store.outbox.eventsAfter(first!, 10)).map((e) => [e.subjectKey, e.at, e.request]),
        [
          ['e2', new Date(2000).toISOString(), { key: 'e2' }],
          ['e3', new Date(3000).toISOString(), { key: 'e3' }],
        ],
      );
      assert.deepEqual(await store.outbox.eventsAfter(0, 10, ['EntityCreate']), []);
      assert.deepEqual(await store.outbox.backlog(first!, ['EntityUpdate']), { count: 2, oldestAt: 2000 });
      assert.equal((await store.outbox.event(second!))?.requestId, 'r-e2');
      await store.write(async (tx) => {
        await tx.outbox.addDeadLetter({ plugin: 'p1', seq: second!, attempts: 3, lastError: 'x', failedAt: new Date(5000).toISOString() });
        await tx.outbox.setCursor('p1', third!);
        await tx.outbox.setCursor('gone', third!);
      });
      assert.deepEqual(await store.outbox.deadLetters({ plugin: 'p1' }), [
        { plugin: 'p1', seq: second!, attempts: 3, lastError: 'x', failedAt: new Date(5000).toISOString() },
      ]);
      assert.deepEqual([...(await store.outbox.cursors())], [['p1', third!]]);
      assert.equal(await store.write((tx) => tx.outbox.prune(10_000)), 2, 'all but the dead-lettered one');
      assert.deepEqual(
        (await store.outbox.eventsAfter(0, 10)).map((e) => e.seq),
        [second!],
      );
      assert.equal(await store.write((tx) => tx.outbox.removeDeadLetter('p1', second!)), true);
      assert.equal(await store.write((tx) => tx.outbox.removeDeadLetter('p1', second!)), false);
    });

    it("keeps an event's provenance (source, client address, user agent, client), and reads one without it as without", async () => {
      const event = (key: string, provenance: RequestProvenance): NewEvent => ({
        point: 'EntityLock',
        operation: 'entity.lock',
        subjectKind: 'entity',
        subjectKey: key,
        before: null,
        after: null,
        request: {},
        requestId: `r-${key}`,
        caller: 'root',
        ...provenance,
        at: new Date(1000).toISOString(),
      });
      const full = { source: 'api', clientAddress: '192.0.2.10', userAgent: 'keyhold-cli/1.0.0', client: 'cli/1.0.0' } as const;
      const [withAll, serverOnly, none] = await store.write(async (tx) => [
        await tx.outbox.append(event('full', full)),
        await tx.outbox.append(event('server', { source: 'server' })),
        await tx.outbox.append(event('none', {})),
      ]);
      const provenance = async (seq: number) => {
        const { source, clientAddress, userAgent, client, ...rest } = (await store.outbox.event(seq))!;
        assert.equal(rest.requestId, `r-${rest.subjectKey}`);
        return { source, clientAddress, userAgent, client };
      };
      assert.deepEqual(await provenance(withAll!), full);
      const absent = { source: undefined, clientAddress: undefined, userAgent: undefined, client: undefined };
      assert.deepEqual(await provenance(serverOnly!), { ...absent, source: 'server' });
      assert.deepEqual(await provenance(none!), absent);
      assert.deepEqual(
        Object.keys((await store.outbox.event(none!))!).sort(),
        Object.keys(event('k', {})).concat('seq').sort(),
        'no field set to undefined',
      );
    });
  });
});

describe('outbox rows', () => {
  it('reads a body written before the provenance fields (before, after, request only) as an event without them', () => {
    const row: EventRow = {
      seq: 7,
      at: 1000,
      point: 'EntityLock',
      operation: 'entity.lock',
      subject_kind: 'entity',
      subject_key: 'alice',
      request_id: 'r-7',
      caller: 'root',
      body: '{"before":null,"after":null,"request":{"reason":"left"}}',
    };
    assert.deepEqual(eventFrom(row), {
      seq: 7,
      point: 'EntityLock',
      operation: 'entity.lock',
      subjectKind: 'entity',
      subjectKey: 'alice',
      before: null,
      after: null,
      request: { reason: 'left' },
      requestId: 'r-7',
      caller: 'root',
      at: new Date(1000).toISOString(),
    });
  });
});

describe('SqliteStore only: schema and file', () => {
  it('creates a WAL database at the latest schema version and keeps data across reopen', async () => {
    const file = join(dir, 'reopen.sqlite');
    const store = SqliteStore.open(file);
    await store.write((tx) => tx.insertEntity(entity('alice', { displayName: 'Alice' })));
    await store.close();

    assert.equal(statSync(file).mode & 0o777, 0o600, 'the file with the secret hashes is owner-only');
    const raw = new Database(file, { readonly: true });
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(raw.pragma('user_version', { simple: true }), MIGRATIONS.length);
    raw.close();

    const again = SqliteStore.open(file);
    assert.equal((await again.reader.getEntity('alice'))?.meta.displayName, 'Alice');
    await again.close();
  });

  it('refuses a database whose schema is newer than this keyhold', () => {
    const file = join(dir, 'newer.sqlite');
    const raw = new Database(file);
    raw.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    raw.close();
    assert.throws(
      () => SqliteStore.open(file),
      new RegExp(`schema version ${MIGRATIONS.length + 1}, newer than this keyhold knows \\(${MIGRATIONS.length}\\)`),
    );
  });
});

describe('SqliteStore only: capability index and group commit', () => {
  it('fills the capability index from the stored objects when a database made before it is opened', async () => {
    const file = join(dir, 'before-capability-index.sqlite');
    const raw = new Database(file);
    raw.exec(MIGRATIONS[0]!.sql);
    raw.pragma('user_version = 1');
    const encoded = (bytes: Uint8Array) => Buffer.from(bytes);
    raw
      .prepare('INSERT INTO entities (id, number, secret, display_name, legal_name, data) VALUES (?, ?, ?, ?, ?, ?)')
      .run('root', 1, '', '', '', encoded(encodeEntity(parseEntity({ id: 'root', meta: { capabilities: ['GLOBAL_ROOT'] } }))));
    raw
      .prepare('INSERT INTO entities (id, number, secret, display_name, legal_name, data) VALUES (?, ?, ?, ?, ?, ?)')
      .run('plain', 2, '', '', '', encoded(encodeEntity(parseEntity({ id: 'plain' }))));
    raw
      .prepare('INSERT INTO groups (name, number, display_name, managed_by, data) VALUES (?, ?, ?, ?, ?)')
      .run('lockers', 1, '', null, encoded(encodeGroup(parseGroup({ name: 'lockers', capabilities: ['LOCK_ENTITY'] }))));
    raw.close();
    const store = SqliteStore.open(file);
    try {
      assert.deepEqual(await store.reader.entitiesWithCapability('GLOBAL_ROOT'), ['root']);
      assert.deepEqual(await store.reader.groupsWithCapability('LOCK_ENTITY'), ['lockers']);
    } finally {
      await store.close();
    }
  });

  let store: SqliteStore;
  before(() => {
    store = SqliteStore.open(':memory:');
  });
  after(() => store.close());

  it('commits writes that queued up together, rolling a failing one back alone, answering each only after the commit', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const transactions = store.writeTransactions;
    const first = store.write(async (tx) => {
      await tx.insertEntity(entity('g-first'));
      await gate;
    });
    // Queued while the first holds its transaction: these three share the next one.
    const answered: string[] = [];
    const second = store.write((tx) => tx.insertEntity(entity('g-second'))).then(() => answered.push('second'));
    const failing = store.write(async (tx) => {
      await tx.insertEntity(entity('g-failing'));
      throw new Error('fails');
    });
    const third = store.write(async (tx) => {
      assert.ok(await tx.getEntity('g-second'), 'a write sees the writes before it in its batch');
      assert.equal(await tx.getEntity('g-failing'), undefined, 'a failed write is rolled back alone');
      await tx.insertEntity(entity('g-third'));
    });
    open();
    await first;
    await assert.rejects(failing, /fails/);
    await Promise.all([second, third]);
    assert.equal(store.writeTransactions, transactions + 2, 'the first write, then one transaction for the three queued behind it');
    assert.deepEqual(answered, ['second']);
    assert.deepEqual(
      (await store.reader.searchEntities({ text: 'g-' })).map((e) => e.id),
      ['g-first', 'g-second', 'g-third'],
    );
  });
});

describe('PostgresStore only: several servers on one database', { skip: postgresSkip() }, () => {
  it('migrates once when two servers start at the same time, and refuses a newer schema', async () => {
    const url = await freshDatabaseUrl();
    const [a, b] = await Promise.all([PostgresStore.open(url), PostgresStore.open(url)]);
    await Promise.all([a.close(), b.close()]);
    const raw = new pg.Client({ connectionString: url });
    await raw.connect();
    try {
      const { rows } = await raw.query<{ version: number }>('SELECT version FROM keyhold_migrations ORDER BY version');
      assert.deepEqual(
        rows.map((r) => r.version),
        PG_MIGRATIONS.map((_m, i) => i + 1),
      );
      await raw.query("INSERT INTO keyhold_migrations (version, description) VALUES ($1, 'from the future')", [PG_MIGRATIONS.length + 1]);
    } finally {
      await raw.end();
    }
    await assert.rejects(
      PostgresStore.open(url),
      new RegExp(`schema version ${PG_MIGRATIONS.length + 1}, newer than this keyhold knows \\(${PG_MIGRATIONS.length}\\)`),
    );
  });

  describe('two stores on one database', () => {
    let a: PostgresStore;
    let b: PostgresStore;
    let url: string;
    before(async () => {
      url = await freshDatabaseUrl();
      a = await PostgresStore.open(url);
      b = await PostgresStore.open(url, { busyTimeoutMs: 300 });
    });
    after(async () => {
      await a.close();
      await b.close();
    });

    it("sees each other's commits at once, change counter included", async () => {
      const counter = await b.changeCounter();
      await a.write((tx) => tx.insertEntity(entity('from-a')));
      assert.ok(await b.reader.getEntity('from-a'));
      assert.notEqual(await b.changeCounter(), counter);
    });

    it("serialises writes across stores: numbers are never given twice, and a write waits for the other store's", async () => {
      const created = await Promise.all(
        Array.from({ length: 20 }, (_v, i) => (i % 2 ? a : b).write((tx) => tx.insertEntity(entity(`par-${i}`)))),
      );
      assert.equal(new Set(created.map((e) => e.number)).size, 20);
    });

    it('never lets a reader skip an event: a later append commits only after the earlier one', async () => {
      const event = (key: string): NewEvent => ({
        point: 'EntityUpdate',
        operation: 'entity.update-meta',
        subjectKind: 'entity',
        subjectKey: key,
        before: null,
        after: null,
        request: {},
        requestId: key,
        caller: null,
        at: new Date().toISOString(),
      });
      const last = (await a.outbox.eventsAfter(0, 1000)).at(-1)?.seq ?? 0;
      let open!: () => void;
      const gate = new Promise<void>((resolve) => (open = resolve));
      let appended!: () => void;
      const appendedFirst = new Promise<void>((resolve) => (appended = resolve));
      const slow = a.write(async (tx) => {
        await tx.outbox.append(event('slow'));
        appended();
        await gate;
      });
      await appendedFirst;
      const fast = b.write((tx) => tx.outbox.append(event('fast')));
      let fastDone = false;
      void fast.then(
        () => (fastDone = true),
        () => (fastDone = true),
      );
      // Until the second transaction has either committed or is seen waiting for a lock (bounded).
      const raw = new pg.Client({ connectionString: url });
      await raw.connect();
      try {
        for (let i = 0; i < 2000 && !fastDone; i++) {
          const { rows } = await raw.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
          );
          if (rows[0]!.n > 0) break;
        }
      } finally {
        await raw.end();
      }
      // While the first transaction is open, nothing after `last` is visible: not even the second one's event.
      assert.deepEqual(await b.outbox.eventsAfter(last, 10), []);
      open();
      await Promise.all([slow, fast]);
      assert.deepEqual(
        (await b.outbox.eventsAfter(last, 10)).map((e) => e.subjectKey),
        ['slow', 'fast'],
      );
    });

    it('refuses a write with KH_ERR_STORE_BUSY when another server holds the write lock too long, and says so in health', async () => {
      let open!: () => void;
      const gate = new Promise<void>((resolve) => (open = resolve));
      let started!: () => void;
      const holding = new Promise<void>((resolve) => (started = resolve));
      const held = a.write(async () => {
        started();
        await gate;
      });
      await holding;
      try {
        await rejectsWith(
          b.write((tx) => tx.insertEntity(entity('too-late'))),
          'KH_ERR_STORE_BUSY',
        );
        assert.equal((await b.health()).writes, 'ok', 'a lock wait that ended is not a fault of the database');
      } finally {
        open();
        await held;
      }
      assert.equal(await a.reader.getEntity('too-late'), undefined);
    });
  });

  it('reports an unreachable database in health and as KH_ERR_STORE_FAILED', async () => {
    const url = await freshDatabaseUrl();
    const store = await PostgresStore.open(url);
    const database = new URL(url).pathname.slice(1);
    const admin = new pg.Client({ connectionString: url.replace(/\/[^/]+$/, '/postgres') });
    await admin.connect();
    try {
      // The database refuses new connections and drops the store's: as if its server had gone away.
      await admin.query(`ALTER DATABASE ${database} ALLOW_CONNECTIONS false`);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [database]);
      const health = await store.health();
      assert.equal(health.reads, 'failing');
      await rejectsWith(
        store.write((tx) => tx.insertEntity(entity('unwritten'))),
        'KH_ERR_STORE_FAILED',
      );
    } finally {
      await admin.end();
      await store.close();
    }
  });
});
