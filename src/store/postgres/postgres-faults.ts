// What PostgreSQL's failures mean to a client: uniqueness and foreign-key violations become the
// same catalog errors the SQLite store gives, and the database's surroundings (a lock not had in
// time, a full disk, a server that cannot be reached) become KH_ERR_STORE_BUSY / _FULL / _FAILED,
// so the API and /healthz treat both stores alike.
import { DatabaseError } from 'pg';
import { KeyholdError } from '../../errors.js';
import { catalogFaultKind, type StoreFaultKind } from '../store-fault-kind.js';
import { uniquenessError, type Inserted, type UniqueKey } from '../uniqueness-errors.js';

/** What a client is told to wait before it retries a write refused for a lock (Retry-After). */
const RETRY_AFTER_SECONDS = 1;

/** The unique key of each unique constraint (named in migrations.ts). */
const UNIQUE_CONSTRAINTS: Record<string, UniqueKey> = {
  entities_id_key: 'entity id',
  groups_name_key: 'group name',
  entities_number_key: 'number',
  groups_number_key: 'number',
  memberships_key: 'membership',
  expansions_key: 'expansion',
};

/** Maps the uniqueness violations PostgreSQL raises (by constraint name) to the catalog; anything else passes through. */
export function mapConstraintError(err: unknown, inserted?: Inserted): unknown {
  if (!(err instanceof DatabaseError) || err.code !== '23505' || err.constraint === undefined) return err;
  const key = Object.hasOwn(UNIQUE_CONSTRAINTS, err.constraint) ? UNIQUE_CONSTRAINTS[err.constraint] : undefined;
  return key === undefined ? err : uniquenessError(key, inserted);
}

/** True for a foreign-key violation (SQLSTATE 23503). */
export function isForeignKeyViolation(err: unknown): boolean {
  return err instanceof DatabaseError && err.code === '23503';
}

/** Node's socket errors when the database server cannot be reached or went away. */
const CONNECTION_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE', 'EAI_AGAIN']);

/** The kind of a failure that comes from the database's surroundings, not from keyhold's statements. */
export function faultKind(err: unknown): StoreFaultKind | undefined {
  if (err instanceof KeyholdError) return catalogFaultKind(err);
  if (err instanceof DatabaseError) {
    const code = err.code ?? '';
    // lock_not_available (lock_timeout), deadlock, serialization failure, too many connections.
    if (code === '55P03' || code === '40P01' || code === '40001' || code === '53300') return 'busy';
    if (code === '53100') return 'full';
    // Connection exceptions, operator intervention (shutdown), system and configuration errors, read-only (hot standby),
    // and what refuses a new connection: authentication, a missing database, one not accepting connections.
    if (/^(08|28|57|58|F0|XX)/.test(code) || ['25006', '3D000', '55000'].includes(code)) return 'failing';
    return undefined;
  }
  // The pool had no free connection in time: this server's own writes and reads hold them all.
  if (err instanceof Error && err.message.includes('timeout exceeded when trying to connect')) return 'busy';
  const errno = (err as { code?: unknown } | null)?.code;
  if (typeof errno === 'string' && CONNECTION_ERRNOS.has(errno)) return 'failing';
  if (err instanceof Error && /Connection terminated|connection timeout|Client has encountered a connection error/i.test(err.message))
    return 'failing';
  return undefined;
}

/** The catalog error for a store fault; anything else is returned as it is. */
export function toStoreError(err: unknown, waitedMs: number): unknown {
  const kind = faultKind(err);
  if (kind === undefined || err instanceof KeyholdError) return err;
  const postgres = (err as { code?: string }).code ?? (err as Error).message;
  if (kind === 'busy')
    return new KeyholdError(
      'KH_ERR_STORE_BUSY',
      `the database's write lock was not had in time (waited up to ${waitedMs} ms; another server or request holds it); retry in a moment`,
      { retryAfterSeconds: RETRY_AFTER_SECONDS, postgres },
    );
  if (kind === 'full')
    return new KeyholdError(
      'KH_ERR_STORE_FULL',
      'the disk holding the PostgreSQL database is full: nothing was written; free some space on it',
      {
        postgres,
      },
    );
  return new KeyholdError(
    'KH_ERR_STORE_FAILED',
    `the PostgreSQL database cannot be used (${postgres}): nothing was written; the server log has the details`,
    { postgres },
  );
}
