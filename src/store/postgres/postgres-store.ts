// The PostgreSQL store, for sites running several keyhold servers on one database. Reads go to
// the pool, one statement each (committed data only). Every write() is one transaction on a
// connection of its own that first takes one transaction-level advisory lock (WRITE_LOCK), so
// write transactions run one at a time across all servers, as the Store interface promises and as
// the SQLite store does. That one lock gives:
//   - the engine's commit-time re-validation holds across servers (versions are also read FOR
//     UPDATE inside the transaction, see postgres-transaction.ts);
//   - numbers allocated as max+1 cannot be taken twice;
//   - outbox seqs become visible in seq order (postgres-outbox.ts);
//   - cross-subject rules checked at commit (the last GLOBAL_ROOT holder, references) see every
//     earlier commit.
// Isolation is READ COMMITTED on purpose: each statement sees everything committed before it, so a
// transaction that waited for the lock sees the commit of the one it waited for. Under REPEATABLE
// READ the snapshot would be taken by the lock statement itself, before the wait, and miss it.
// Writes are short (no plugin runs inside one), so one lock costs little; group commit stays SQLite's.
// Signing key changes are such write transactions too. Plugin state changes are not: each takes its
// plugin's lock instead (postgres-plugin-state.ts); delivery leases are single statements (postgres-leases.ts).
import pg from 'pg';
import type { DeliveryLeaseStore, OutboxReader } from '../outbox.js';
import type { PluginStateStore } from '../plugin-state.js';
import type { SigningKeyStore } from '../signing-keys.js';
import type { Store, StoreHealth, StoreReader, StoreTransaction } from '../store.js';
import { migrate } from './migrations.js';
import { faultKind, toStoreError } from './postgres-faults.js';
import { PostgresDeliveryLeases } from './postgres-leases.js';
import { PostgresOutboxReader } from './postgres-outbox.js';
import { PostgresPluginState } from './postgres-plugin-state.js';
import { PostgresReader, type Query } from './postgres-reader.js';
import { PostgresSigningKeys } from './postgres-signing-keys.js';
import { PostgresTransaction } from './postgres-transaction.js';

/** The advisory lock every write transaction holds ("khwrit" in ASCII). */
const WRITE_LOCK = 0x6b6877726974n.toString();
/** What a write transaction runs after BEGIN: take the write lock, and bump the change counter (caches of every server watch it). */
const SERIALISED = `SELECT pg_advisory_xact_lock(${WRITE_LOCK}); UPDATE change_counter SET value = value + 1`;
/** How long a write waits for the lock (and a free connection) before KH_ERR_STORE_BUSY, unless told otherwise. */
const DEFAULT_BUSY_TIMEOUT_MS = 5000;
/** Connections per server: reads run in parallel, writes take one each while they wait for the lock. */
const POOL_SIZE = 10;

/** bigint columns (versions, seqs, epoch ms) as JavaScript numbers: all stay far below 2^53. */
const types = new pg.TypeOverrides();
types.setTypeParser(pg.types.builtins.INT8, Number);

export interface PostgresStoreOptions {
  /** How long a write waits for another server's write lock before KH_ERR_STORE_BUSY (default 5 s). */
  busyTimeoutMs?: number;
  /** Connections in the pool (default 10). */
  poolSize?: number;
}

export class PostgresStore implements Store {
  readonly reader: StoreReader;
  readonly outbox: OutboxReader;
  readonly pluginState: PluginStateStore;
  readonly keys: SigningKeyStore;
  readonly leases: DeliveryLeaseStore;
  /** Writes of this server that wait for their turn (queued here, or for another server's write lock). */
  private waiting = 0;
  /**
   * This server's writes run one after another, in the order asked, as on SQLite: they would wait
   * for each other on WRITE_LOCK anyway, and queueing here keeps them from holding a connection each meanwhile.
   */
  private queue: Promise<unknown> = Promise.resolve();
  private lastWriteFault: { kind: string; message: string } | null = null;
  private begun = 0;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly busyTimeoutMs: number,
  ) {
    const query: Query = async (sql, params) => {
      try {
        return (await pool.query(sql, params)).rows;
      } catch (err) {
        throw toStoreError(err, busyTimeoutMs);
      }
    };
    this.reader = new PostgresReader(query);
    this.outbox = new PostgresOutboxReader(query);
    // A state change is a transaction of its own under its plugin's lock, not the write lock (postgres-plugin-state.ts).
    this.pluginState = new PostgresPluginState(query, (lock, work) => {
      this.waiting++;
      return this.transaction(lock, work);
    });
    this.keys = new PostgresSigningKeys(query, (work) => this.serialised(work));
    // One conditional statement each, atomic by itself.
    this.leases = new PostgresDeliveryLeases(query);
  }

  /** Connects to `url` and migrates the database; rejects with the driver's error when it cannot (the caller says what to do). */
  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    const pool = new pg.Pool({ connectionString: url, max: options.poolSize ?? POOL_SIZE, types, connectionTimeoutMillis: busyTimeoutMs });
    // An idle connection the database closed (a restart, a failover) is dropped by the pool; the next query opens a new one.
    pool.on('error', () => {});
    try {
      const client = await pool.connect();
      try {
        await migrate(client);
      } finally {
        client.release();
      }
      return new PostgresStore(pool, busyTimeoutMs);
    } catch (err) {
      await pool.end();
      throw err;
    }
  }

  write<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T> {
    return this.serialised(async (query) => {
      const tx = new PostgresTransaction(query);
      try {
        return await work(tx);
      } finally {
        tx.end();
      }
    });
  }

  /** Runs `work` in a write transaction under the write lock, after this server's earlier writes. */
  private serialised<T>(work: (query: Query) => Promise<T>): Promise<T> {
    this.waiting++;
    const run = this.queue.then(() => this.transaction(SERIALISED, work));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** One transaction that first runs `lock` (statements taking its locks); `waiting` counts it until it holds them. */
  private async transaction<T>(lock: string, work: (query: Query) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      this.waiting--;
      throw this.fault(err);
    }
    // A connection that breaks while checked out reports on the client too; the failing query rejects as well.
    const ignore = () => {};
    client.on('error', ignore);
    this.begun++;
    const query: Query = async (sql, params) => (await client.query(sql, params)).rows;
    let broken: Error | undefined;
    try {
      try {
        // One round trip: begin, bound the lock wait, and take the locks.
        await client.query(`BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = ${this.busyTimeoutMs}; ${lock}`);
      } finally {
        this.waiting--;
      }
      const value = await work(query);
      // A statement that failed aborts the transaction; should `work` have caught its error and
      // resolved, PostgreSQL answers COMMIT with a rollback: that must not be taken for a commit.
      if ((await client.query('COMMIT')).command === 'ROLLBACK')
        throw new Error('the write transaction had failed (a statement was refused and its error caught): nothing was written');
      this.lastWriteFault = null;
      return value;
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackErr: Error) => {
        broken = rollbackErr;
      });
      throw this.fault(err);
    } finally {
      client.removeListener('error', ignore);
      client.release(broken);
    }
  }

  /** Write transactions begun since the store was opened (tests and benchmarks count them, as on SQLite). */
  get writeTransactions(): number {
    return this.begun;
  }

  /** A write's failure as the catalog error its caller gets; a disk or connection fault is remembered for health. */
  private fault(err: unknown): unknown {
    const failed = toStoreError(err, this.busyTimeoutMs);
    const kind = faultKind(failed);
    if (kind === 'full' || kind === 'failing') this.lastWriteFault = { kind, message: (failed as Error).message };
    return failed;
  }

  /** The one-row counter every write transaction of every server bumps. */
  async changeCounter(): Promise<number> {
    const [row] = await this.query<{ value: number }>('SELECT value FROM change_counter');
    return row!.value;
  }

  /**
   * Reads answer when a statement does; writes are ok when the database accepts writes (not a
   * read-only standby) and the last write did not fail for the database's sake. A write lock held
   * long by another server shows as `busy` when this server's writes queue behind it.
   */
  async health(): Promise<StoreHealth> {
    const queuedWrites = this.waiting;
    let readOnly: string;
    try {
      readOnly = (await this.query<{ ro: string }>("SELECT current_setting('transaction_read_only') AS ro"))[0]!.ro;
    } catch (err) {
      return { reads: 'failing', writes: 'failing', problem: `reads fail: ${(err as Error).message}`, queuedWrites };
    }
    if (readOnly === 'on')
      return { reads: 'ok', writes: 'failing', problem: 'the database accepts reads only (a standby or read-only)', queuedWrites };
    if (this.lastWriteFault)
      return {
        reads: 'ok',
        writes: this.lastWriteFault.kind as StoreHealth['writes'],
        problem: `the last write failed: ${this.lastWriteFault.message}`,
        queuedWrites,
      };
    return { reads: 'ok', writes: 'ok', queuedWrites };
  }

  /** Waits for queued writes, then closes the pool's connections. */
  async close(): Promise<void> {
    await this.queue;
    await this.pool.end();
  }

  private async query<R extends pg.QueryResultRow>(sql: string): Promise<R[]> {
    try {
      return (await this.pool.query<R>(sql)).rows;
    } catch (err) {
      throw toStoreError(err, this.busyTimeoutMs);
    }
  }
}
