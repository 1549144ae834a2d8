import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { encodeEntity, encodeGroup, parseEntity, parseGroup, type Entity } from 'keyhold-plugin-sdk';
import { MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { rejectsWith } from '../support/identity-harness.js';

const entity = (id: string, fields: { number?: number; displayName?: string; legalName?: string } = {}): Entity =>
  parseEntity({ id, number: fields.number ?? 0, meta: { displayName: fields.displayName ?? '', legalName: fields.legalName ?? '' } });

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'keyhold-store-test-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('SqliteStore: schema and file', () => {
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

describe('SqliteStore: holders of a capability', () => {
  it('follows every write of an entity or group, and deletes with it', async () => {
    const store = SqliteStore.open(':memory:');
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

  it('are filled from the stored objects when a database made before this index is opened', async () => {
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
});

describe('SqliteStore: entities', () => {
  let store: SqliteStore;
  before(() => {
    store = SqliteStore.open(':memory:');
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

describe('SqliteStore: groups', () => {
  let store: SqliteStore;
  before(() => {
    store = SqliteStore.open(':memory:');
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

describe('SqliteStore: transactions', () => {
  let store: SqliteStore;
  before(() => {
    store = SqliteStore.open(':memory:');
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

  it('refuses a transaction object used after its transaction ended', async () => {
    let leaked: Parameters<Parameters<SqliteStore['write']>[0]>[0] | undefined;
    await store.write(async (tx) => {
      leaked = tx;
    });
    await assert.rejects(leaked!.insertEntity(entity('late')), /used after it ended/);
    assert.equal(await store.reader.getEntity('late'), undefined);
  });
});
