// The embedded default store: one SQLite file in WAL mode, opened twice. The write connection
// runs one transaction at a time (BEGIN IMMEDIATE … COMMIT/ROLLBACK), queued; the lifecycle keeps
// them short (no plugin is called inside one) and compares each subject's `version` column to
// see whether it changed since the request read it. The read connection only ever sees
// committed data (WAL gives each read statement a snapshot of the last commit).
// A lock held by another process is waited for asynchronously (store-faults.ts), and SQLite's
// own failures (locked, disk full, I/O errors) reach clients as catalog errors; store-health.ts
// says whether writes can go through.
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import {
  decodeEntity,
  decodeGroup,
  encodeEntity,
  encodeGroup,
  type Capability,
  type Entity,
  type ExpansionMode,
  type Group,
} from 'keyhold-plugin-sdk';
import { KeyholdError } from '../../errors.js';
import type { DeliveryLeaseStore, OutboxReader, OutboxWriter } from '../outbox.js';
import type { SigningKeyStore } from '../signing-keys.js';
import type { LoginRecord, SearchQuery, Store, StoreHealth, StoreReader, StoreTransaction, SubjectRef, ThrottleRecord } from '../store.js';
import { migrate } from './migrations.js';
import { SqliteDeliveryLeases } from './sqlite-leases.js';
import { SqliteOutboxReader, SqliteOutboxWriter } from './sqlite-outbox.js';
import { SqlitePluginState } from './sqlite-plugin-state.js';
import type { PluginStateStore } from '../plugin-state.js';
import { SqliteSigningKeys, type WriteOnConnection } from './sqlite-signing-keys.js';
import { BUSY_WAIT_MS, faultKind, retryWhileBusy, toStoreError } from './store-faults.js';
import { checkHealth, type WriteFault } from './store-health.js';
import { WriteBatches, type QueuedWrite } from './write-batches.js';
import * as throttle from './throttle-rows.js';

const DEFAULT_SEARCH_LIMIT = 100;
/** How long a write waits for another process's lock before KH_ERR_STORE_BUSY, unless told otherwise. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5000;
const INT32_MAX = 2147483647;
/** A new token generation: 128 random bits, as the migration that created the table made them. */
const NEW_GENERATION = 'lower(hex(randomblob(16)))';

interface EntityRow {
  id: string;
  number: number;
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
  if (!(err instanceof Database.SqliteError && (err.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || err.code === 'SQLITE_CONSTRAINT_UNIQUE')))
    return err;
  const m = err.message;
  const name = inserted ? ` "${inserted.key}"` : '';
  if (m.includes('entities.id')) return new KeyholdError('KH_ERR_ENTITY_EXISTS', `an entity${name} already exists`);
  if (m.includes('groups.name')) return new KeyholdError('KH_ERR_GROUP_EXISTS', `a group${name} already exists`);
  if (m.includes('.number'))
    return new KeyholdError(
      'KH_ERR_NUMBER_TAKEN',
      inserted ? `${inserted.kind} number ${inserted.number} is already in use` : 'that number is already in use',
    );
  if (m.includes('memberships.')) return new KeyholdError('KH_ERR_ALREADY_MEMBER', 'the entity is already a direct member of the group');
  if (m.includes('expansions.')) return new KeyholdError('KH_ERR_EXPANSION_EXISTS', 'the group already has an expansion of that target');
  return err;
}

/** Runs synchronous better-sqlite3 work as the interface's promise: errors reject (mapped), never throw. */
function settle<T>(run: () => T, inserted?: Inserted): Promise<T> {
  try {
    return Promise.resolve(run());
  } catch (err) {
    return Promise.reject(toStoreError(mapConstraintError(err, inserted), BUSY_WAIT_MS));
  }
}

/** Per connection, the statements of the reads every request makes, compiled once. */
const hotStatements = new WeakMap<Database.Database, Map<string, Database.Statement>>();

function prepared<P extends unknown[], R>(db: Database.Database, sql: string): Database.Statement<P, R> {
  let cache = hotStatements.get(db);
  if (!cache) hotStatements.set(db, (cache = new Map()));
  let statement = cache.get(sql);
  if (!statement) cache.set(sql, (statement = db.prepare(sql)));
  return statement as unknown as Database.Statement<P, R>;
}

/** Reads over one connection; the transaction class adds writes on the write connection. */
class SqliteReader implements StoreReader {
  constructor(
    protected readonly db: Database.Database,
    /** How long a read waits for a lock another process holds (rare in WAL mode: recovery, exclusive locking). */
    private readonly busyTimeoutMs: number,
  ) {}

  /** Runs a read, retrying it while another process holds a lock it needs. */
  protected read<T>(run: () => T): Promise<T> {
    return retryWhileBusy(run, Date.now() + this.busyTimeoutMs).catch((err: unknown) =>
      Promise.reject(toStoreError(err, this.busyTimeoutMs)),
    );
  }

  protected groupsOf(id: string): string[] {
    return prepared<[string], { group_name: string }>(this.db, 'SELECT group_name FROM memberships WHERE entity_id = ? ORDER BY group_name')
      .all(id)
      .map((r) => r.group_name);
  }

  protected entityFrom(row: EntityRow): Entity {
    const stored = decodeEntity(row.data);
    return { ...stored, id: row.id, number: row.number, secret: '', meta: { ...stored.meta, groups: this.groupsOf(row.id) } };
  }

  protected groupFrom(row: GroupRow): Group {
    const expansions = this.db
      .prepare<[string], { mode: ExpansionMode; target: string }>(
        'SELECT mode, target FROM expansions WHERE group_name = ? ORDER BY position',
      )
      .all(row.name)
      .map((r) => ({ mode: r.mode, group: r.target }));
    return { ...decodeGroup(row.data), name: row.name, number: row.number, managedBy: row.managed_by ?? '', expansions };
  }

  /** Runs several statements on one snapshot (a read transaction, or a savepoint inside a write one). */
  protected consistent<T>(read: () => T): Promise<T> {
    return this.read(() => this.db.transaction(read)());
  }

  getEntity(id: string): Promise<Entity | undefined> {
    return this.consistent(() => {
      const row = prepared<[string], EntityRow>(this.db, 'SELECT id, number, data FROM entities WHERE id = ?').get(id);
      return row && this.entityFrom(row);
    });
  }

  searchEntities(query: SearchQuery): Promise<Entity[]> {
    return this.consistent(() => {
      return this.db
        .prepare<[SearchParams], EntityRow>(
          // The page of ids comes from the covering index alone (a scan of short rows, about 20 ms
          // for 100k entities when nothing matches); only its rows are then read whole.
          `SELECT id, number, data FROM entities WHERE id IN (
             SELECT id FROM entities INDEXED BY entities_search
             WHERE id > @after AND (id LIKE @pattern ESCAPE '\\' OR display_name LIKE @pattern ESCAPE '\\' OR legal_name LIKE @pattern ESCAPE '\\')
             ORDER BY id LIMIT @limit)
           ORDER BY id`,
        )
        .all(searchParams(query))
        .map((row) => this.entityFrom(row));
    });
  }

  secretHash(id: string): Promise<string | undefined> {
    return this.read(() => prepared<[string], { secret: string }>(this.db, 'SELECT secret FROM entities WHERE id = ?').get(id)?.secret);
  }

  loginRecord(id: string): Promise<LoginRecord | undefined> {
    return this.consistent(() => {
      const row = prepared<[string], EntityRow & { secret: string; version: number }>(
        this.db,
        'SELECT id, number, data, secret, version FROM entities WHERE id = ?',
      ).get(id);
      return row && { entity: this.entityFrom(row), secretHash: row.secret, version: row.version };
    });
  }

  countEntities(): Promise<number> {
    return this.read(() => this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM entities').get()!.n);
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
    return this.read(() => this.names('SELECT entity_id AS name FROM memberships WHERE group_name = ? ORDER BY entity_id', group));
  }

  groupsExpanding(group: string): Promise<string[]> {
    return this.read(() => this.expanding(group));
  }

  groupsManagedBy(group: string): Promise<string[]> {
    return this.read(() => this.managed(group));
  }

  tokenGeneration(entityId: string): Promise<string | undefined> {
    return settle(
      () =>
        this.db.prepare<[string], { generation: string }>('SELECT generation FROM token_generations WHERE entity_id = ?').get(entityId)
          ?.generation,
    );
  }

  entitiesWithCapability(capability: Capability): Promise<string[]> {
    return settle(() =>
      this.names('SELECT entity_id AS name FROM entity_capabilities WHERE capability = ? ORDER BY entity_id', capability),
    );
  }

  groupsWithCapability(capability: Capability): Promise<string[]> {
    return settle(() =>
      this.names('SELECT group_name AS name FROM group_capabilities WHERE capability = ? ORDER BY group_name', capability),
    );
  }

  version(subject: SubjectRef): Promise<number | undefined> {
    const sql = subject.kind === 'entity' ? 'SELECT version FROM entities WHERE id = ?' : 'SELECT version FROM groups WHERE name = ?';
    return this.read(() => prepared<[string], { version: number }>(this.db, sql).get(subject.key)?.version);
  }

  nextNumber(kind: SubjectRef['kind']): Promise<number> {
    return settle(() => numberFor(this.db, kind === 'entity' ? 'entities' : 'groups', 0));
  }

  bootstrapRoot(): Promise<string | undefined> {
    return settle(() => this.db.prepare<[], { value: string }>("SELECT value FROM server_facts WHERE key = 'bootstrapRoot'").get()?.value);
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
    return this.db
      .prepare<[string], { name: string }>(sql)
      .all(key)
      .map((r) => r.name);
  }
}

/** `number` as given, or the next free one when it is 0. */
function numberFor(db: Database.Database, table: 'entities' | 'groups', number: number): number {
  if (number !== 0) return number;
  const next = db.prepare<[], { n: number }>(`SELECT coalesce(max(number), 0) + 1 AS n FROM ${table}`).get()!.n;
  if (next > INT32_MAX)
    throw new KeyholdError(
      'KH_ERR_NUMBER_TAKEN',
      `no automatic ${table === 'entities' ? 'entity' : 'group'} number is left above the highest one in use; give a number`,
    );
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
  readonly outbox: OutboxWriter = new SqliteOutboxWriter(() => this.writable());

  private writable(): Database.Database {
    if (!this.open) throw new Error('store transaction used after it ended');
    return this.db;
  }

  insertEntity(entity: Entity): Promise<Entity> {
    return settle(
      () => {
        const db = this.writable();
        const number = numberFor(db, 'entities', entity.number);
        db.prepare('INSERT INTO entities (id, number, secret, display_name, legal_name, data) VALUES (?, ?, ?, ?, ?, ?)').run(
          entity.id,
          number,
          '',
          entity.meta.displayName,
          entity.meta.legalName,
          entityData(entity),
        );
        db.prepare(`INSERT INTO token_generations (entity_id, generation) VALUES (?, ${NEW_GENERATION})`).run(entity.id);
        this.writeCapabilities('entity', entity.id, entity.meta.capabilities);
        return { ...entity, number, meta: { ...entity.meta, groups: [] } };
      },
      { kind: 'entity', key: entity.id, number: entity.number },
    );
  }

  async updateEntity(entity: Entity): Promise<void> {
    await this.change(
      'UPDATE entities SET display_name = ?, legal_name = ?, data = ?, version = version + 1 WHERE id = ?',
      [entity.meta.displayName, entity.meta.legalName, entityData(entity), entity.id],
      () => new KeyholdError('KH_ERR_ENTITY_NOT_FOUND', `no entity "${entity.id}"`),
    );
    this.writeCapabilities('entity', entity.id, entity.meta.capabilities);
  }

  deleteEntity(id: string): Promise<void> {
    return this.change('DELETE FROM entities WHERE id = ?', [id], () => new KeyholdError('KH_ERR_ENTITY_NOT_FOUND', `no entity "${id}"`));
  }

  setSecretHash(id: string, hash: string): Promise<void> {
    return this.change(
      'UPDATE entities SET secret = ?, version = version + 1 WHERE id = ?',
      [hash, id],
      () => new KeyholdError('KH_ERR_ENTITY_NOT_FOUND', `no entity "${id}"`),
    );
  }

  renewTokenGeneration(entityId: string): Promise<void> {
    return this.change(`UPDATE token_generations SET generation = ${NEW_GENERATION} WHERE entity_id = ?`, [entityId]);
  }

  recordBootstrapRoot(id: string): Promise<void> {
    return settle(() => {
      this.writable()
        .prepare("INSERT INTO server_facts (key, value) VALUES ('bootstrapRoot', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
        .run(id);
    });
  }

  insertGroup(group: Group): Promise<Group> {
    return settle(
      () => {
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
        this.writeCapabilities('group', group.name, group.capabilities);
        return { ...group, number };
      },
      { kind: 'group', key: group.name, number: group.number },
    );
  }

  updateGroup(group: Group): Promise<void> {
    return settle(() => {
      const result = this.writable()
        .prepare('UPDATE groups SET display_name = ?, managed_by = ?, data = ?, version = version + 1 WHERE name = ?')
        .run(group.displayName, group.managedBy || null, groupData(group), group.name);
      if (result.changes === 0) throw new KeyholdError('KH_ERR_GROUP_NOT_FOUND', `no group "${group.name}"`);
      this.db.prepare('DELETE FROM expansions WHERE group_name = ?').run(group.name);
      this.writeExpansions(group);
      this.writeCapabilities('group', group.name, group.capabilities);
    });
  }

  /** Refused by the database (foreign keys) while other groups expand or are managed by this one. */
  deleteGroup(name: string): Promise<void> {
    return this.change(
      'DELETE FROM groups WHERE name = ?',
      [name],
      () => new KeyholdError('KH_ERR_GROUP_NOT_FOUND', `no group "${name}"`),
      () => {
        const users = [...new Set([...this.expanding(name), ...this.managed(name)])].filter((g) => g !== name).sort();
        return new KeyholdError('KH_ERR_GROUP_IN_USE', `group "${name}" is still expanded or managed by ${users.join(', ')}`, {
          groups: users,
        });
      },
    );
  }

  async addMembership(entityId: string, group: string): Promise<void> {
    await this.change('INSERT INTO memberships (entity_id, group_name) VALUES (?, ?)', [entityId, group]);
    await this.bumpEntity(entityId);
  }

  async removeMembership(entityId: string, group: string): Promise<void> {
    await this.change(
      'DELETE FROM memberships WHERE entity_id = ? AND group_name = ?',
      [entityId, group],
      () => new KeyholdError('KH_ERR_NOT_A_MEMBER', `"${entityId}" is not a direct member of "${group}"`),
    );
    await this.bumpEntity(entityId);
  }

  /** An entity's memberships are part of it: changing them moves its version. */
  private bumpEntity(id: string): Promise<void> {
    return this.change('UPDATE entities SET version = version + 1 WHERE id = ?', [id]);
  }

  /** Replaces the by-capability copy of what the subject's blob says it holds. */
  private writeCapabilities(kind: 'entity' | 'group', key: string, capabilities: readonly Capability[]): void {
    const [table, column] = kind === 'entity' ? ['entity_capabilities', 'entity_id'] : ['group_capabilities', 'group_name'];
    this.db.prepare(`DELETE FROM ${table} WHERE ${column} = ?`).run(key);
    const insert = this.db.prepare(`INSERT INTO ${table} (${column}, capability) VALUES (?, ?)`);
    for (const capability of new Set(capabilities)) insert.run(key, capability);
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
        changes = this.writable()
          .prepare(sql)
          .run(...params).changes;
      } catch (err) {
        if (referenced && err instanceof Database.SqliteError && err.code === 'SQLITE_CONSTRAINT_FOREIGNKEY') throw referenced();
        throw err;
      }
      if (changes === 0 && missing) throw missing();
    });
  }
}

function connect(file: string, busyWaitMs: number, options: Database.Options = {}): Database.Database {
  const db = new Database(file, options);
  db.pragma(`busy_timeout = ${busyWaitMs}`);
  db.pragma('foreign_keys = ON');
  return db;
}

export interface SqliteStoreOptions {
  /** How long a write waits for a lock another process holds before KH_ERR_STORE_BUSY (default 5 s). */
  busyTimeoutMs?: number;
}

export class SqliteStore implements Store {
  readonly reader: StoreReader;
  readonly outbox: OutboxReader;
  readonly pluginState: PluginStateStore;
  readonly keys: SigningKeyStore;
  readonly leases: DeliveryLeaseStore;
  /** The write queue: writes run one after another, those that queued up meanwhile committed together. */
  private readonly writes = new WriteBatches<StoreTransaction>((batch) => this.transaction(batch));
  /** Read per authenticated request, so prepared once. */
  private readonly dataVersion: Database.Statement<[], number>;
  private begun = 0;
  /** Why the last write failed when the disk or the files were at fault; cleared by the next commit. No probe sees a full disk coming. */
  private lastWriteFault: WriteFault | null = null;

  private constructor(
    private readonly writer: Database.Database,
    private readonly readerDb: Database.Database,
    private readonly busyTimeoutMs: number,
    /** A directory to remove on close (the private file behind ':memory:'). */
    private readonly scratchDir: string | undefined,
    /** The directory holding the database, whose disk's free space health reports. */
    private readonly directory: string,
  ) {
    this.reader = new SqliteReader(readerDb, busyTimeoutMs);
    this.dataVersion = readerDb.prepare<[], number>('PRAGMA data_version').pluck();
    this.outbox = new SqliteOutboxReader(readerDb);
    // A state change is a write of its own on the queue (never inside a request's), committed before it resolves.
    this.pluginState = new SqlitePluginState(
      readerDb,
      (work) => this.writes.add(() => work(this.writer), Date.now() + this.busyTimeoutMs),
      (run) =>
        retryWhileBusy(run, Date.now() + this.busyTimeoutMs).catch((err: unknown) => Promise.reject(toStoreError(err, this.busyTimeoutMs))),
    );
    // Their writes run in the store's write queue, on the write connection, like every other write.
    const writeOnConnection: WriteOnConnection = (work) => this.write(async () => work(writer));
    this.keys = new SqliteSigningKeys(readerDb, writeOnConnection);
    this.leases = new SqliteDeliveryLeases(readerDb, writeOnConnection);
  }

  /**
   * Opens (creating if needed) and migrates the database in `file`. `':memory:'` gives a private
   * temporary database removed on close: it is a real file because the separate read connection
   * needs WAL's shared snapshots, which an in-memory database cannot offer.
   */
  static open(file: string, options: SqliteStoreOptions = {}): SqliteStore {
    const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    const scratchDir = file === ':memory:' ? mkdtempSync(join(tmpdir(), 'keyhold-db-')) : undefined;
    const path = scratchDir ? join(scratchDir, 'keyhold.sqlite') : file;
    // The file holds secret hashes: created owner-only (SQLite gives its -wal and -shm files the same mode).
    closeSync(openSync(path, 'a', 0o600));
    // Before the server serves anything, waiting for the lock in SQLite (blocking) is harmless.
    const writer = connect(path, busyTimeoutMs);
    try {
      writer.pragma('journal_mode = WAL');
      // FULL: every acknowledged commit is fsynced to the WAL, so it survives a power loss or OS
      // crash, not only a killed process (NORMAL could lose the last commits). Identity writes are
      // rare and small; a lost password change or lock is worse than an fsync per write.
      writer.pragma('synchronous = FULL');
      migrate(writer);
      writer.pragma(`busy_timeout = ${BUSY_WAIT_MS}`);
      return new SqliteStore(writer, connect(path, BUSY_WAIT_MS, { readonly: true }), busyTimeoutMs, scratchDir, dirname(path));
    } catch (err) {
      writer.close();
      if (scratchDir) rmSync(scratchDir, { recursive: true, force: true });
      throw toStoreError(err, busyTimeoutMs);
    }
  }

  write<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T> {
    // The wait for another process's lock counts from now: writes queued behind a waiting one do not each wait anew.
    return this.writes.add(work, Date.now() + this.busyTimeoutMs);
  }

  /**
   * One transaction for a batch of writes, each in a savepoint: a write that fails is rolled back
   * alone and its caller gets the error; the others are answered once the commit succeeded (or
   * all get its error). Returns the writes not run because a failure ended the whole transaction.
   */
  private async transaction(batch: QueuedWrite<StoreTransaction>[]): Promise<QueuedWrite<StoreTransaction>[]> {
    try {
      await retryWhileBusy(() => this.writer.exec('BEGIN IMMEDIATE'), batch[0]!.deadline);
    } catch (err) {
      const failed = toStoreError(err, this.busyTimeoutMs);
      for (const write of batch) write.reject(failed);
      return [];
    }
    this.begun++;
    const done: { write: QueuedWrite<StoreTransaction>; value: unknown }[] = [];
    for (const [i, write] of batch.entries()) {
      const tx = new SqliteTransaction(this.writer, this.busyTimeoutMs);
      try {
        this.writer.exec('SAVEPOINT write');
        const value = await write.work(tx);
        tx.open = false;
        this.writer.exec('RELEASE write');
        done.push({ write, value });
      } catch (err) {
        tx.open = false;
        const failed = this.fault(err);
        write.reject(failed);
        // Some failures (an I/O error, a full disk) end the whole transaction: the writes before are undone too, those after run in the next one.
        if (!this.writer.inTransaction) {
          for (const d of done) d.write.reject(failed);
          return batch.slice(i + 1);
        }
        this.writer.exec('ROLLBACK TO write');
        this.writer.exec('RELEASE write');
      }
    }
    try {
      this.writer.exec('COMMIT');
      this.lastWriteFault = null;
    } catch (err) {
      const failed = this.fault(err);
      try {
        if (this.writer.inTransaction) this.writer.exec('ROLLBACK');
      } finally {
        for (const d of done) d.write.reject(failed);
      }
      return [];
    }
    for (const d of done) d.write.resolve(d.value);
    return [];
  }

  /** A write's failure as the catalog error its caller gets; a disk or file fault is remembered for health. */
  private fault(err: unknown): unknown {
    const failed = toStoreError(err, BUSY_WAIT_MS);
    const kind = faultKind(failed);
    if (kind === 'full' || kind === 'failing') this.lastWriteFault = { kind, message: (failed as Error).message };
    return failed;
  }

  /** Write transactions begun since the store was opened (a login that changes nothing begins none; tests and benchmarks count them). */
  get writeTransactions(): number {
    return this.begun;
  }

  /**
   * SQLite's data_version on the read connection, which never writes itself: it changes whenever
   * any other connection (the write connection, another process) has committed since it was last read.
   */
  changeCounter(): Promise<number> {
    return settle(() => this.dataVersion.get()!);
  }

  health(): Promise<StoreHealth> {
    return checkHealth({
      reader: this.readerDb,
      writer: this.writer,
      directory: this.directory,
      lastWriteFault: this.lastWriteFault,
      queuedWrites: this.writes.size,
    });
  }

  /** Waits for queued writes, then closes both connections. */
  async close(): Promise<void> {
    await this.writes.drained();
    this.readerDb.close();
    this.writer.close();
    if (this.scratchDir) rmSync(this.scratchDir, { recursive: true, force: true });
  }
}
