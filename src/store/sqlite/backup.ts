// Backup and restore of the SQLite store, for `keyhold backup` and `keyhold restore`. A backup is
// SQLite's online backup (better-sqlite3's db.backup()) from a read-only connection of its own: it
// runs while the server serves and writes (WAL lets it read a consistent state; a step that sees
// the database changed by the server starts over, so the copy is of one committed state). A
// restore needs the server stopped (the data directory lock says, and is held meanwhile so none
// starts), checks the file is a keyhold database of a schema version this keyhold knows, and moves
// the database it replaces aside (never deletes it). The restored database is migrated to this
// version by the next server start, like any older one.
import { existsSync, openSync, closeSync, renameSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { MIGRATIONS } from './migrations.js';

/** Tables every keyhold database has had since the first migration. */
const KEYHOLD_TABLES = ['entities', 'groups', 'memberships'];
/** SQLite's own sidecar files of a database in WAL mode. */
const SIDECARS = ['-wal', '-shm'];

/** A backup or restore refused or failed; the message says what to do. */
export class BackupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackupError';
  }
}

export interface DatabaseSummary {
  schemaVersion: number;
  entities: number;
  groups: number;
}

/** Opens `file` read-only and checks it is a whole keyhold database this keyhold can run on; the caller closes it. */
function openKeyholdDatabase(file: string, what: string): { db: Database.Database; summary: DatabaseSummary } {
  if (!existsSync(file)) throw new BackupError(`${what} ${file} does not exist`);
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new BackupError(`${what} ${file} cannot be opened: ${(err as Error).message}`);
  }
  try {
    let tables: string[];
    try {
      tables = db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as unknown as string[];
    } catch (err) {
      throw new BackupError(`${what} ${file} is not a keyhold database (not an SQLite database: ${(err as Error).message})`);
    }
    const version = db.pragma('user_version', { simple: true }) as number;
    const missing = KEYHOLD_TABLES.filter((t) => !tables.includes(t));
    if (missing.length > 0 || version < 1)
      throw new BackupError(
        `${what} ${file} is not a keyhold database (an SQLite database without keyhold's tables: ${missing.join(', ') || 'no schema version'})`,
      );
    if (version > MIGRATIONS.length)
      throw new BackupError(
        `${what} ${file} has schema version ${version}, newer than this keyhold knows (${MIGRATIONS.length}): use the keyhold version that wrote it, or a newer one`,
      );
    const check = db.pragma('quick_check', { simple: true }) as string;
    if (check !== 'ok') throw new BackupError(`${what} ${file} is damaged (SQLite quick_check: ${check}); use another backup`);
    const count = (table: string) => db.prepare<[], number>(`SELECT count(*) FROM ${table}`).pluck().get()!;
    return { db, summary: { schemaVersion: version, entities: count('entities'), groups: count('groups') } };
  } catch (err) {
    db.close();
    throw err;
  }
}

/** Copies `from` (an open connection) into a new owner-only file `to`, through a temporary file renamed into place whole. */
async function copyInto(from: Database.Database, to: string): Promise<void> {
  const partial = `${to}.partial`;
  rmSync(partial, { force: true });
  // Created owner-only before SQLite writes into it: the copy holds secret hashes and signing keys.
  closeSync(openSync(partial, 'wx', 0o600));
  try {
    // After the first step, the rest in one: a copy restarted by a concurrent write is then redone in one read transaction.
    await from.backup(partial, { progress: () => 1_000_000_000 });
    renameSync(partial, to);
  } catch (err) {
    rmSync(partial, { force: true });
    throw err;
  }
}

/** Writes an online backup of `database` to `file` (which must not exist yet). */
export async function backupDatabase(database: string, file: string): Promise<DatabaseSummary> {
  if (existsSync(file)) throw new BackupError(`${file} exists already: choose another file name, or remove it first`);
  if (!existsSync(database))
    throw new BackupError(
      `there is no keyhold database ${database}: check the data directory (dataDir in the settings file, KEYHOLD_DATA_DIR)`,
    );
  const { db: source } = openKeyholdDatabase(database, 'the database');
  try {
    await copyInto(source, file);
  } catch (err) {
    throw new BackupError(`the backup to ${file} failed: ${(err as Error).message}`);
  } finally {
    source.close();
  }
  // What was written, checked as a restore would check it.
  return checkBackup(file);
}

/** Checks that `file` is a keyhold database this keyhold can restore (what restoreDatabase checks first), and says what it holds. */
export function checkBackup(file: string): DatabaseSummary {
  const { db, summary } = openKeyholdDatabase(file, 'the backup');
  db.close();
  return summary;
}

export interface RestoreResult extends DatabaseSummary {
  /** Where the database the restore replaced was moved, or null when there was none. */
  replacedKeptAs: string | null;
}

/**
 * Puts the backup `file` in place of `database`, moving the database it replaces (with its WAL
 * files) aside under a name with the time. The caller holds the data directory lock.
 */
export async function restoreDatabase(file: string, database: string, now = new Date()): Promise<RestoreResult> {
  const { db: source, summary } = openKeyholdDatabase(file, 'the backup');
  try {
    let replacedKeptAs: string | null = null;
    if (existsSync(database)) {
      replacedKeptAs = `${database}.replaced-${now.toISOString().replace(/[:.]/g, '-')}`;
      // The WAL files go with it under the same base name, so SQLite reads the aside copy whole (commits not yet checkpointed included).
      for (const suffix of ['', ...SIDECARS]) if (existsSync(database + suffix)) renameSync(database + suffix, replacedKeptAs + suffix);
    }
    for (const suffix of SIDECARS) rmSync(database + suffix, { force: true });
    try {
      await copyInto(source, database);
    } catch (err) {
      throw new BackupError(
        `the restore failed while copying ${file}: ${(err as Error).message}${replacedKeptAs ? `; the previous database is kept as ${replacedKeptAs}: rename it back to ${database}` : ''}`,
      );
    }
    return { ...summary, replacedKeptAs };
  } finally {
    source.close();
  }
}
