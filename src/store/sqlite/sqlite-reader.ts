// The SQLite store's reads (SqliteReader, over either connection) and the row mapping and error
// mapping its transaction shares. Reads on the read connection see committed data only; the
// same class inside a write transaction sees that transaction's own writes.
import Database from 'better-sqlite3';
import { decodeEntity, decodeGroup, type Capability, type Entity, type ExpansionMode, type Group } from 'keyhold-plugin-sdk';
import { KeyholdError } from '../../errors.js';
import type { LoginRecord, SearchQuery, StoreReader, SubjectRef, ThrottleRecord } from '../store.js';
import { uniquenessError, type Inserted, type UniqueKey } from '../uniqueness-errors.js';
import { BUSY_WAIT_MS, retryWhileBusy, toStoreError } from './store-faults.js';
import * as throttle from './throttle-rows.js';

const DEFAULT_SEARCH_LIMIT = 100;
const INT32_MAX = 2147483647;
/** A new token generation: 128 random bits, as the migration that created the table made them. */
export const NEW_GENERATION = 'lower(hex(randomblob(16)))';

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

/** The unique key a uniqueness error of SQLite names (by its column in the message), undefined for any other error. */
function refusedKey(err: unknown): UniqueKey | undefined {
  if (!(err instanceof Database.SqliteError && (err.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || err.code === 'SQLITE_CONSTRAINT_UNIQUE')))
    return undefined;
  const m = err.message;
  if (m.includes('entities.id')) return 'entity id';
  if (m.includes('groups.name')) return 'group name';
  if (m.includes('.number')) return 'number';
  if (m.includes('memberships.')) return 'membership';
  if (m.includes('expansions.')) return 'expansion';
  return undefined;
}

/** Maps the uniqueness errors SQLite raises to the catalog; anything else passes through. */
function mapConstraintError(err: unknown, inserted?: Inserted): unknown {
  const key = refusedKey(err);
  return key === undefined ? err : uniquenessError(key, inserted);
}

/** Runs synchronous better-sqlite3 work as the interface's promise: errors reject (mapped), never throw. */
export function settle<T>(run: () => T, inserted?: Inserted): Promise<T> {
  try {
    return Promise.resolve(run());
  } catch (err) {
    return Promise.reject(toStoreError(mapConstraintError(err, inserted), BUSY_WAIT_MS));
  }
}

/** Per connection, the statements of the reads every request makes, compiled once. */
const hotStatements = new WeakMap<Database.Database, Map<string, Database.Statement>>();

export function prepared<P extends unknown[], R>(db: Database.Database, sql: string): Database.Statement<P, R> {
  let cache = hotStatements.get(db);
  if (!cache) hotStatements.set(db, (cache = new Map()));
  let statement = cache.get(sql);
  if (!statement) cache.set(sql, (statement = db.prepare(sql)));
  return statement as unknown as Database.Statement<P, R>;
}

/** Reads over one connection; the transaction class adds writes on the write connection. */
export class SqliteReader implements StoreReader {
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

export function numberFor(db: Database.Database, table: 'entities' | 'groups', number: number): number {
  if (number !== 0) return number;
  const next = db.prepare<[], { n: number }>(`SELECT coalesce(max(number), 0) + 1 AS n FROM ${table}`).get()!.n;
  if (next > INT32_MAX)
    throw new KeyholdError(
      'KH_ERR_NUMBER_TAKEN',
      `no automatic ${table === 'entities' ? 'entity' : 'group'} number is left above the highest one in use; give a number`,
    );
  return next;
}
