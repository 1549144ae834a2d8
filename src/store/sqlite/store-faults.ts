// What SQLite's own failures mean to a client, and waiting for another process's lock without
// blocking the event loop. better-sqlite3 is synchronous: its busy_timeout sleeps in the calling
// thread, so a long one would stall every request (health checks included) for the whole wait.
// The connections therefore wait only BUSY_WAIT_MS in SQLite, and retryWhileBusy waits the rest
// asynchronously, with backoff, up to the deadline (the storeBusyTimeout setting).
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { KeyholdError } from '../../errors.js';
import { catalogFaultKind, type StoreFaultKind } from '../store-fault-kind.js';

/** The longest SQLite itself waits for a lock, blocking the thread: a few milliseconds. */
export const BUSY_WAIT_MS = 5;
const FIRST_RETRY_MS = 5;
const MAX_RETRY_MS = 100;
/** What a client is told to wait before it retries a write refused for a lock (Retry-After). */
const RETRY_AFTER_SECONDS = 1;

/** The kind of a failure that comes from the database's surroundings, not from keyhold's statements: an SQLite error, or the catalog error made of one. */
export function faultKind(err: unknown): StoreFaultKind | undefined {
  if (err instanceof KeyholdError) return catalogFaultKind(err);
  if (!(err instanceof Database.SqliteError)) return undefined;
  const code = (err as { code: string }).code;
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return 'busy';
  if (code === 'SQLITE_FULL') return 'full';
  if (['SQLITE_IOERR', 'SQLITE_READONLY', 'SQLITE_CANTOPEN', 'SQLITE_CORRUPT', 'SQLITE_NOTADB'].some((c) => code.startsWith(c)))
    return 'failing';
  return undefined;
}

/** The catalog error for a store fault (KH_ERR_STORE_BUSY / _FULL / _FAILED); anything else is returned as it is. */
export function toStoreError(err: unknown, waitedMs: number): unknown {
  const kind = faultKind(err);
  if (kind === undefined || err instanceof KeyholdError) return err;
  const sqlite = (err as { code: string }).code;
  if (kind === 'busy')
    return new KeyholdError(
      'KH_ERR_STORE_BUSY',
      `the database is locked by another process (waited ${waitedMs} ms for it); retry in a moment`,
      { retryAfterSeconds: RETRY_AFTER_SECONDS, sqlite },
    );
  if (kind === 'full')
    return new KeyholdError('KH_ERR_STORE_FULL', 'the disk holding the database is full: nothing was written; free some space on it', {
      sqlite,
    });
  return new KeyholdError(
    'KH_ERR_STORE_FAILED',
    `the database file cannot be used (${sqlite}): nothing was written; the server log has the details`,
    { sqlite },
  );
}

/**
 * Runs `attempt` until it does not fail with SQLITE_BUSY or `deadline` (a Date.now() time) has
 * passed, sleeping between attempts with doubling delays; the last failure is thrown as it is.
 */
export async function retryWhileBusy<T>(attempt: () => T, deadline: number): Promise<T> {
  for (let delay = FIRST_RETRY_MS; ; delay = Math.min(2 * delay, MAX_RETRY_MS)) {
    try {
      return attempt();
    } catch (err) {
      if (faultKind(err) !== 'busy' || Date.now() >= deadline) throw err;
      await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
    }
  }
}
