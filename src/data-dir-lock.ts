// One keyhold server per data directory. Two servers on one SQLite file would each think their
// write queue is the only one and fight over the lock (every write waiting, then 503), and both
// would sign tokens and print bootstrap secrets from the same directory. The lock is a file in
// the data directory holding the owner's pid and its start time (Linux: /proc/<pid>/stat), made
// whole in a temporary file and then hard-linked into place, which fails when the file exists.
// A lock whose process is gone, or whose pid now belongs to another process (same pid, other
// start time: a reboot or pid reuse), is stale and taken over with a log line.
import { linkSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';

export const LOCK_FILE = 'keyhold.lock';

/** A second server asked for a data directory another live server holds. */
export class DataDirInUseError extends Error {
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(
      `the data directory ${dataDir} is in use by another keyhold server (pid ${pid}; lock file ${join(dataDir, LOCK_FILE)}); stop that server, or give this one its own data directory (KEYHOLD_DATA_DIR, or dataDir in keyhold.yaml)`,
    );
    this.name = 'DataDirInUseError';
  }
}

interface LockOwner {
  pid: number;
  /** The process's start time in clock ticks since boot; null where the system does not say (no /proc). */
  startTime: string | null;
}

/** The state and start time of a running process from /proc/<pid>/stat, or null where there is no /proc. */
function procStat(pid: number): { state: string; startTime: string } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // "pid (comm) state ppid …": comm may hold spaces and parentheses, so fields count from the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0]!, startTime: fields[19]! };
}

function isRunning(owner: LockOwner): boolean {
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to another user.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = procStat(owner.pid);
  if (stat === null) return true;
  if (stat.state === 'Z' || stat.state === 'X') return false;
  return owner.startTime === null || stat.startTime === owner.startTime;
}

/** The lock file's text, or null when there is none (its owner has just released it). */
function readLock(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** The owner a lock file names, or null when it names none (a damaged file). */
function ownerIn(text: string): LockOwner | null {
  try {
    const owner = JSON.parse(text) as Partial<LockOwner>;
    return typeof owner.pid === 'number' && Number.isInteger(owner.pid) && owner.pid > 0
      ? { pid: owner.pid, startTime: typeof owner.startTime === 'string' ? owner.startTime : null }
      : null;
  } catch {
    return null;
  }
}

/** A held data directory lock. */
export interface DataDirLock {
  /** Removes the lock file, if it is still this server's. */
  release(): void;
}

/** Takes the data directory's lock, taking over a stale one; throws DataDirInUseError while a live server holds it. */
export function lockDataDir(dataDir: string, logger: Logger): DataDirLock {
  const file = join(dataDir, LOCK_FILE);
  const mine = `${JSON.stringify({ pid: process.pid, startTime: procStat(process.pid)?.startTime ?? null })}\n`;
  const staging = `${file}.${process.pid}.${Date.now()}`;
  writeFileSync(staging, mine, { mode: 0o600 });
  try {
    // Bounded: each round either takes the lock, refuses, or removes one stale lock another start may have replaced.
    for (let round = 0; round < 5; round++) {
      try {
        linkSync(staging, file);
        return { release: () => (readLock(file) === mine ? rmSync(file, { force: true }) : undefined) };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const seen = readLock(file);
      if (seen === null) continue;
      const owner = ownerIn(seen);
      if (owner && isRunning(owner)) throw new DataDirInUseError(dataDir, owner.pid);
      // Removed only if unchanged since it was judged, so a lock another start just took is left alone.
      if (readLock(file) !== seen) continue;
      rmSync(file, { force: true });
      logger.warn(
        { lockFile: file, stalePid: owner?.pid ?? null },
        `taking over the stale data directory lock ${file}${owner ? ` of pid ${owner.pid}, which is no longer running` : ' (unreadable)'}`,
      );
    }
    throw new Error(`could not take the data directory lock ${file}: other servers keep starting on ${dataDir}`);
  } finally {
    rmSync(staging, { force: true });
  }
}
