// Store faults on demand, for the tests of how keyhold meets them: another process's connection
// holding the database lock, and a disk that is full as far as SQLite can tell (max_page_count
// on the store's own write connection: SQLITE_FULL without a small filesystem to mount).
import Database from 'better-sqlite3';
import type { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';

/** A second connection to `file` holding BEGIN EXCLUSIVE, as another process would. */
export function holdDatabaseLock(file: string): { release(): void } {
  const other = new Database(file);
  other.exec('BEGIN EXCLUSIVE');
  return {
    release: () => {
      other.exec('ROLLBACK');
      other.close();
    },
  };
}

/** Makes every write of `store` that needs a new page fail with SQLITE_FULL, until `undo` is called. */
export function fillDisk(store: SqliteStore): { undo(): void } {
  // The write connection is private: reached only here, to set a per-connection limit on it.
  const writer = (store as unknown as { writer: Database.Database }).writer;
  const before = writer.pragma('max_page_count', { simple: true }) as number;
  writer.pragma(`max_page_count = ${writer.pragma('page_count', { simple: true }) as number}`);
  return { undo: () => void writer.pragma(`max_page_count = ${before}`) };
}
