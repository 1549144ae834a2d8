// Whether the SQLite store can do its job, for /healthz, found out cheaply and without writing:
// a read on the read connection; the last write's disk failure (a full disk or a quota shows
// only when a write fails, so it is remembered until one succeeds); the free space on the disk;
// and whether the write lock could be taken now (BEGIN IMMEDIATE; ROLLBACK, at most BUSY_WAIT_MS).
import { statfs } from 'node:fs/promises';
import type Database from 'better-sqlite3';
import type { StoreHealth } from '../store.js';
import type { StoreFaultKind } from '../store-fault-kind.js';
import { faultKind } from './store-faults.js';

/** Less free space than this on the database's disk and health says writes are `full`: the next write may fail. */
export const MIN_FREE_BYTES = 16 * 1024 * 1024;

/** Why the last write failed, when the disk or the files were at fault. */
export interface WriteFault {
  kind: StoreFaultKind;
  message: string;
}

export interface HealthParts {
  reader: Database.Database;
  writer: Database.Database;
  /** The directory holding the database. */
  directory: string;
  lastWriteFault: WriteFault | null;
  queuedWrites: number;
}

/** Undefined when a write could take the lock now (or this server's own write holds it), else the failure. */
function probeWriteLock(writer: Database.Database): unknown {
  if (writer.inTransaction) return undefined;
  try {
    writer.exec('BEGIN IMMEDIATE');
    writer.exec('ROLLBACK');
    return undefined;
  } catch (err) {
    return err;
  }
}

export async function checkHealth({ reader, writer, directory, lastWriteFault, queuedWrites }: HealthParts): Promise<StoreHealth> {
  try {
    reader.prepare('SELECT 1 FROM entities LIMIT 1').get();
  } catch (err) {
    return { reads: 'failing', writes: 'failing', problem: `reads fail: ${(err as Error).message}`, queuedWrites };
  }
  if (lastWriteFault)
    return { reads: 'ok', writes: lastWriteFault.kind, problem: `the last write failed: ${lastWriteFault.message}`, queuedWrites };
  // A file system that cannot say how full it is is not reported full.
  const free = await statfs(directory).then(
    (fs) => fs.bavail * fs.bsize,
    () => Infinity,
  );
  if (free < MIN_FREE_BYTES)
    return { reads: 'ok', writes: 'full', problem: `only ${free} bytes are free on the disk holding ${directory}`, queuedWrites };
  const lockFailure = probeWriteLock(writer);
  if (lockFailure === undefined) return { reads: 'ok', writes: 'ok', queuedWrites };
  const kind = faultKind(lockFailure) ?? 'failing';
  return {
    reads: 'ok',
    writes: kind,
    problem: kind === 'busy' ? 'another process holds the database lock' : `a write cannot begin: ${(lockFailure as Error).message}`,
    queuedWrites,
  };
}
