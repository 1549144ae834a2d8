// The embedded default store: one SQLite file in WAL mode, opened twice. The write connection
// runs one transaction at a time (BEGIN IMMEDIATE … COMMIT/ROLLBACK), queued; the lifecycle keeps
// them short (no plugin is called inside one) and compares each subject's `version` column to
// see whether it changed since the request read it. The read connection only ever sees
// committed data (WAL gives each read statement a snapshot of the last commit).
// A lock held by another process is waited for asynchronously (store-faults.ts), and SQLite's
// own failures (locked, disk full, I/O errors) reach clients as catalog errors; store-health.ts
// says whether writes can go through. The reads are sqlite-reader.ts, the writes of one
// transaction sqlite-transaction.ts.
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import type { DeliveryLeaseStore, OutboxReader } from '../outbox.js';
import type { SigningKeyStore } from '../signing-keys.js';
import type { Store, StoreHealth, StoreReader, StoreTransaction } from '../store.js';
import { migrate } from './migrations.js';
import { SqliteDeliveryLeases } from './sqlite-leases.js';
import { SqliteOutboxReader } from './sqlite-outbox.js';
import { SqlitePluginState } from './sqlite-plugin-state.js';
import type { PluginStateStore } from '../plugin-state.js';
import { SqliteSigningKeys, type WriteOnConnection } from './sqlite-signing-keys.js';
import { BUSY_WAIT_MS, faultKind, retryWhileBusy, toStoreError } from './store-faults.js';
import { checkHealth, type WriteFault } from './store-health.js';
import { WriteBatches, type QueuedWrite } from './write-batches.js';
import { SqliteReader, settle } from './sqlite-reader.js';
import { SqliteTransaction } from './sqlite-transaction.js';

/** How long a write waits for another process's lock before KH_ERR_STORE_BUSY, unless told otherwise. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5000;

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
