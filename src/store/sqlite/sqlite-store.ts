// The embedded default store: one SQLite file in WAL mode, opened twice. The write connection
// runs one transaction at a time (BEGIN IMMEDIATE … COMMIT/ROLLBACK), queued so that a
// transaction awaiting a plugin call never interleaves with another; the read connection only
// ever sees committed data (WAL gives each read statement a snapshot of the last commit).
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { decodeEntity, decodeGroup, encodeEntity, encodeGroup, type Entity, type ExpansionMode, type Group } from 'keyhold-plugin-sdk';
import { KeyholdError } from '../../errors.js';
import type { SearchQuery, Store, StoreReader, StoreTransaction, ThrottleRecord } from '../store.js';
import { migrate } from './migrations.js';
import * as throttle from './throttle-rows.js';

const DEFAULT_SEARCH_LIMIT = 100;
/** How long a connection waits for another process's lock before SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;
const INT32_MAX = 2147483647;

interface EntityRow {
  id: string;
  number: number;
  secret: string;
  data: Buffer;
}

interface GroupRow {
  name: string;
  number: number;
  managed_by: string | null;
  data: Buffer;
}

interface SearchParams {
  after: string;
  /** The text as a LIKE pattern matching it anywhere, LIKE's wildcards escaped. */
  pattern: string;
  limit: number;
}

function searchParams(query: SearchQuery): SearchParams {
  const text = query.text ?? '';
  return { after: query.after ?? '', pattern: `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`, limit: query.limit ?? DEFAULT_SEARCH_LIMIT };
}

/** The object an insert was about, for the messages of uniqueness errors. */
interface Inserted {
  kind: 'entity' | 'group';
  key: string;
  number: number;
}

/** Maps the uniqueness errors SQLite raises to the catalog; anything else passes through. */
function mapConstraintError(err: unknown, inserted?: Inserted): unknown {
  if (!(err instanceof Database.SqliteError && (err.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || err.code === 'SQLITE_CONSTRAINT_UNIQUE'))) return err;
  const m = err.message;
  const name = inserted ? ` "${inserted.key}"` : '';
  if (m.includes('entities.id')) return new KeyholdError('KH_ERR_ENTITY_EXISTS', `an entity${name} already exists`);
  if (m.includes('groups.name')) return new KeyholdError('KH_ERR_GROUP_EXISTS', `a group${name} already exists`);
  if (m.includes('.number')) return new KeyholdError('KH_ERR_NUMBER_TAKEN', inserted ? `${inserted.kind} number ${inserted.number} is already in use` : 'that number is already in use');
  if (m.includes('memberships.')) return new KeyholdError('KH_ERR_ALREADY_MEMBER', 'the entity is already a direct member of the group');
  if (m.includes('expansions.')) return new KeyholdError('KH_ERR_EXPANSION_EXISTS', 'the group already has an expansion of that target');
  return err;
}

/** Runs synchronous better-sqlite3 work as the interface's promise: errors reject (mapped), never throw. */
function settle<T>(run: () => T, inserted?: Inserted): Promise<T> {
  try {
    return Promise.resolve(run());
  } catch (err) {
    return Promise.reject(mapConstraintError(err, inserted));
  }
}

/** Reads over one connection; the transaction class adds writes on the write connection. */
class SqliteReader implements StoreReader {
  constructor(protected readonly db: Database.Database) {}

  protected groupsOf(id: string): string[] {
    return this.db.prepare<[string], { group_name: string }>('SELECT group_name FROM memberships WHERE entity_id = ? ORDER BY group_name').all(id).map((r) => r.group_name);
  }

  protected entityFrom(row: EntityRow): Entity {
    const stored = decodeEntity(row.data);
    return { ...stored, id: row.id, number: row.number, secret: row.secret, meta: { ...stored.meta, groups: this.groupsOf(row.id) } };
  }

  protected groupFrom(row: GroupRow): Group {
    const expansions = this.db
      .prepare<[string], { mode: ExpansionMode; target: string }>('SELECT mode, target FROM expansions WHERE group_name = ? ORDER BY position')
      .all(row.name)
      .map((r) => ({ mode: r.mode, group: r.target }));
    return { ...decodeGroup(row.data), name: row.name, number: row.number, managedBy: row.managed_by ?? '', expansions };
  }

  /** Runs several statements on one snapshot (a read transaction, or a savepoint inside a write one). */
  protected consistent<T>(read: () => T): Promise<T> {
    return settle(() => this.db.transaction(read)());
  }

  getEntity(id: string): Promise<Entity | undefined> {
    return this.consistent(() => {
      const row = this.db.prepare<[string], EntityRow>('SELECT id, number, secret, data FROM entities WHERE id = ?').get(id);
      return row && this.entityFrom(row);
    });
  }

  searchEntities(query: SearchQuery): Promise<Entity[]> {
    return this.consistent(() => {
      return this.db
        .prepare<[SearchParams], EntityRow>(
          // The page of ids comes from the covering index alone (a scan of short rows, about 20 ms
          // for 100k entities when nothing matches); only its rows are then read whole.
          `SELECT id, number, secret, data FROM entities WHERE id IN (
             SELECT id FROM entities INDEXED BY entities_search
             WHERE id > @after AND (id LIKE @pattern ESCAPE '\\' OR display_name LIKE @pattern ESCAPE '\\' OR legal_name LIKE @pattern ESCAPE '\\')
             ORDER BY id LIMIT @limit)
           ORDER BY id`,
        )
        .all(searchParams(query))
        .map((row) => this.entityFrom(row));
    });
  }

  countEntities(): Promise<number> {
    return settle(() => this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM entities').get()!.n);
  }

  getGroup(name: string): Promise<Group | undefined> {
    return this.consistent(() => {
      const row = this.db.prepare<[string], GroupRow>('SELECT name, number, managed_by, data FROM groups WHERE name = ?').get(name);
      return row && this.groupFrom(row);
    });
  }

  searchGroups(query: SearchQuery): Promise<Group[]> {
    return this.consistent(() => {
      return this.db
        .prepare<[SearchParams], GroupRow>(
          `SELECT name, number, managed_by, data FROM groups WHERE name IN (
             SELECT name FROM groups INDEXED BY groups_search
             WHERE name > @after AND (name LIKE @pattern ESCAPE '\\' OR display_name LIKE @pattern ESCAPE '\\')
             ORDER BY name LIMIT @limit)
           ORDER BY name`,
        )
        .all(searchParams(query))
        .map((row) => this.groupFrom(row));
    });
  }

  directMembers(group: string): Promise<string[]> {
    return settle(() => this.names('SELECT entity_id AS name FROM memberships WHERE group_name = ? ORDER BY entity_id', group));
  }

  groupsExpanding(group: string): Promise<string[]> {
    return settle(() => this.expanding(group));
  }

  groupsManagedBy(group: string): Promise<string[]> {
    return settle(() => this.managed(group));
  }

  throttleRecords(keys: readonly string[]): Promise<ThrottleRecord[]> {
    return this.consistent(() => throttle.readThrottleRecords(this.db, keys));
  }

  lastLoginFrom(entityId: string, address: string): Promise<number | undefined> {
    return settle(() => throttle.readLastLogin(this.db, entityId, address));
  }

  protected expanding(group: string): string[] {
    return this.names('SELECT group_name AS name FROM expansions WHERE target = ? ORDER BY group_name', group);
  }

  protected managed(group: string): string[] {
    return this.names('SELECT name FROM groups WHERE managed_by = ? ORDER BY name', group);
  }

  private names(sql: string, key: string): string[] {
    return this.db.prepare<[string], { name: string }>(sql).all(key).map((r) => r.name);
  }
}

/** `number` as given, or the next free one when it is 0. */
function numberFor(db: Database.Database, table: 'entities' | 'groups', number: number): number {
  if (number !== 0) return number;
  const next = db.prepare<[], { n: number }>(`SELECT coalesce(max(number), 0) + 1 AS n FROM ${table}`).get()!.n;
  if (next > INT32_MAX) throw new KeyholdError('KH_ERR_NUMBER_TAKEN', `no automatic ${table === 'entities' ? 'entity' : 'group'} number is left above the highest one in use; give a number`);
  return next;
}

/** The blob part of an entity: everything but the columns (id, number, secret) and the memberships. */
function entityData(entity: Entity): Buffer {
  return Buffer.from(encodeEntity({ id: '', number: 0, secret: '', meta: { ...entity.meta, groups: [] } }));
}

function groupData(group: Group): Buffer {
  return Buffer.from(encodeGroup({ ...group, name: '', number: 0, managedBy: '', expansions: [] }));
}

class SqliteTransaction extends SqliteReader implements StoreTransaction {
  /** False once the transaction has committed or rolled back: a late write must not land in the next one. */
  open = true;

  private writable(): Database.Database {
    if (!this.open) throw new Error('store transaction used after it ended');
    return this.db;
  }

  insertEntity(entity: Entity): Promise<Entity> {
    return settle(() => {
      const db = this.writable();
      const number = numberFor(db, 'entities', entity.number);
      db.prepare('INSERT INTO entities (id, number, secret, display_name, legal_name, data) VALUES (?, ?, ?, ?, ?, ?)').run(
        entity.id,
        number,
        entity.secret,
        entity.meta.displayName,
        entity.meta.legalName,
        entityData(entity),
      );
      return { ...entity, number, meta: { ...entity.meta, groups: [] } };
    }, { kind: 'entity', key: entity.id, number: entity.number });
  }

  updateEntity(entity: Entity): Promise<void> {
    return this.change(
      'UPDATE entities SET secret = ?, display_name = ?, legal_name = ?, data = ? WHERE id = ?',
      [entity.secret, entity.meta.displayName, entity.meta.legalName, entityData(entity), entity.id],
      () => new KeyholdError('KH_ERR_ENTITY_NOT_FOUND', `no entity "${entity.id}"`),
    );
  }

  deleteEntity(id: string): Promise<void> {
    return this.change('DELETE FROM entities WHERE id = ?', [id], () => new KeyholdError('KH_ERR_ENTITY_NOT_FOUND', `no entity "${id}"`));
  }

  insertGroup(group: Group): Promise<Group> {
    return settle(() => {
      const db = this.writable();
      const number = numberFor(db, 'groups', group.number);
      db.prepare('INSERT INTO groups (name, number, display_name, managed_by, data) VALUES (?, ?, ?, ?, ?)').run(
        group.name,
        number,
        group.displayName,
        group.managedBy || null,
        groupData(group),
      );
      this.writeExpansions(group);
      return { ...group, number };
    }, { kind: 'group', key: group.name, number: group.number });
  }

  updateGroup(group: Group): Promise<void> {
    return settle(() => {
      const result = this.writable()
        .prepare('UPDATE groups SET display_name = ?, managed_by = ?, data = ? WHERE name = ?')
        .run(group.displayName, group.managedBy || null, groupData(group), group.name);
      if (result.changes === 0) throw new KeyholdError('KH_ERR_GROUP_NOT_FOUND', `no group "${group.name}"`);
      this.db.prepare('DELETE FROM expansions WHERE group_name = ?').run(group.name);
      this.writeExpansions(group);
    });
  }

  /** Refused by the database (foreign keys) while other groups expand or are managed by this one. */
  deleteGroup(name: string): Promise<void> {
    return this.change('DELETE FROM groups WHERE name = ?', [name], () => new KeyholdError('KH_ERR_GROUP_NOT_FOUND', `no group "${name}"`), () => {
      const users = [...new Set([...this.expanding(name), ...this.managed(name)])].filter((g) => g !== name).sort();
      return new KeyholdError('KH_ERR_GROUP_IN_USE', `group "${name}" is still expanded or managed by ${users.join(', ')}`, { groups: users });
    });
  }

  addMembership(entityId: string, group: string): Promise<void> {
    return this.change('INSERT INTO memberships (entity_id, group_name) VALUES (?, ?)', [entityId, group]);
  }

  removeMembership(entityId: string, group: string): Promise<void> {
    return this.change(
      'DELETE FROM memberships WHERE entity_id = ? AND group_name = ?',
      [entityId, group],
      () => new KeyholdError('KH_ERR_NOT_A_MEMBER', `"${entityId}" is not a direct member of "${group}"`),
    );
  }

  putThrottleRecords(records: readonly ThrottleRecord[]): Promise<void> {
    return settle(() => throttle.writeThrottleRecords(this.writable(), records));
  }

  deleteThrottleRecords(keys: readonly string[]): Promise<void> {
    return settle(() => throttle.deleteThrottleRecords(this.writable(), keys));
  }

  rememberLogin(entityId: string, address: string, at: number): Promise<void> {
    return settle(() => throttle.writeLastLogin(this.writable(), entityId, address, at));
  }

  pruneLoginThrottle(now: number, failuresBefore: number, loginsBefore: number): Promise<void> {
    return settle(() => throttle.pruneLoginThrottle(this.writable(), now, failuresBefore, loginsBefore));
  }

  private writeExpansions(group: Group): void {
    const insert = this.db.prepare('INSERT INTO expansions (group_name, position, mode, target) VALUES (?, ?, ?, ?)');
    group.expansions.forEach((e, position) => insert.run(group.name, position, e.mode, e.group));
  }

  /**
   * Runs one write statement. `missing`: the error when it changed no row; `referenced`: the error
   * when a foreign key refuses it (otherwise a bug: the identity layer checks references first).
   */
  private change(sql: string, params: unknown[], missing?: () => Error, referenced?: () => Error): Promise<void> {
    return settle(() => {
      let changes: number;
      try {
        changes = this.writable().prepare(sql).run(...params).changes;
      } catch (err) {
        if (referenced && err instanceof Database.SqliteError && err.code === 'SQLITE_CONSTRAINT_FOREIGNKEY') throw referenced();
        throw err;
      }
      if (changes === 0 && missing) throw missing();
    });
  }
}

function connect(file: string, options: Database.Options = {}): Database.Database {
  const db = new Database(file, options);
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  db.pragma('foreign_keys = ON');
  return db;
}

export class SqliteStore implements Store {
  readonly reader: StoreReader;
  /** The tail of the write queue: each write starts when the one before it has settled. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly writer: Database.Database,
    private readonly readerDb: Database.Database,
    /** A directory to remove on close (the private file behind ':memory:'). */
    private readonly scratchDir: string | undefined,
  ) {
    this.reader = new SqliteReader(readerDb);
  }

  /**
   * Opens (creating if needed) and migrates the database in `file`. `':memory:'` gives a private
   * temporary database removed on close: it is a real file because the separate read connection
   * needs WAL's shared snapshots, which an in-memory database cannot offer.
   */
  static open(file: string): SqliteStore {
    const scratchDir = file === ':memory:' ? mkdtempSync(join(tmpdir(), 'keyhold-db-')) : undefined;
    const path = scratchDir ? join(scratchDir, 'keyhold.sqlite') : file;
    // The file holds secret hashes: created owner-only (SQLite gives its -wal and -shm files the same mode).
    closeSync(openSync(path, 'a', 0o600));
    const writer = connect(path);
    try {
      writer.pragma('journal_mode = WAL');
      // FULL: every acknowledged commit is fsynced to the WAL, so it survives a power loss or OS
      // crash, not only a killed process (NORMAL could lose the last commits). Identity writes are
      // rare and small; a lost password change or lock is worse than an fsync per write.
      writer.pragma('synchronous = FULL');
      migrate(writer);
      return new SqliteStore(writer, connect(path, { readonly: true }), scratchDir);
    } catch (err) {
      writer.close();
      if (scratchDir) rmSync(scratchDir, { recursive: true, force: true });
      throw err;
    }
  }

  write<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T> {
    const result = this.queue.then(() => this.transaction(work));
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async transaction<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T> {
    const tx = new SqliteTransaction(this.writer);
    this.writer.exec('BEGIN IMMEDIATE');
    try {
      const result = await work(tx);
      tx.open = false;
      this.writer.exec('COMMIT');
      return result;
    } catch (err) {
      tx.open = false;
      if (this.writer.inTransaction) this.writer.exec('ROLLBACK');
      throw err;
    }
  }

  /** Waits for queued writes, then closes both connections. */
  async close(): Promise<void> {
    await this.queue;
    this.readerDb.close();
    this.writer.close();
    if (this.scratchDir) rmSync(this.scratchDir, { recursive: true, force: true });
  }
}
