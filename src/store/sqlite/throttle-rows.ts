// The SQL of the login throttle's two tables (migration 2), kept apart from the identity data's:
// sqlite-store.ts delegates to these, on its read connection or inside its write transaction.
import type Database from 'better-sqlite3';
import type { ThrottleRecord } from '../store.js';

interface ThrottleRow {
  key: string;
  failures: number;
  last_failure: number;
  blocked_until: number;
}

export function readThrottleRecords(db: Database.Database, keys: readonly string[]): ThrottleRecord[] {
  const select = db.prepare<[string], ThrottleRow>('SELECT key, failures, last_failure, blocked_until FROM login_throttle WHERE key = ?');
  return keys.flatMap((key) => {
    const row = select.get(key);
    return row ? [{ key: row.key, failures: row.failures, lastFailure: row.last_failure, blockedUntil: row.blocked_until }] : [];
  });
}

export function readLastLogin(db: Database.Database, entityId: string, address: string): number | undefined {
  return db
    .prepare<[string, string], { last_login: number }>('SELECT last_login FROM familiar_addresses WHERE entity_id = ? AND address = ?')
    .get(entityId, address)?.last_login;
}

export function writeThrottleRecords(db: Database.Database, records: readonly ThrottleRecord[]): void {
  const upsert = db.prepare('INSERT OR REPLACE INTO login_throttle (key, failures, last_failure, blocked_until) VALUES (?, ?, ?, ?)');
  for (const r of records) upsert.run(r.key, r.failures, r.lastFailure, r.blockedUntil);
}

export function deleteThrottleRecords(db: Database.Database, keys: readonly string[]): void {
  const remove = db.prepare('DELETE FROM login_throttle WHERE key = ?');
  for (const key of keys) remove.run(key);
}

export function writeLastLogin(db: Database.Database, entityId: string, address: string, at: number): void {
  // Through SELECT … WHERE EXISTS: an entity destroyed since its login is not an error, just nothing to remember.
  db.prepare(
    `INSERT INTO familiar_addresses (entity_id, address, last_login) SELECT @entityId, @address, @at WHERE EXISTS (SELECT 1 FROM entities WHERE id = @entityId)
     ON CONFLICT (entity_id, address) DO UPDATE SET last_login = excluded.last_login`,
  ).run({ entityId, address, at });
}

export function pruneLoginThrottle(db: Database.Database, now: number, failuresBefore: number, loginsBefore: number): void {
  db.prepare('DELETE FROM login_throttle WHERE blocked_until <= ? AND last_failure < ?').run(now, failuresBefore);
  db.prepare('DELETE FROM familiar_addresses WHERE last_login < ?').run(loginsBefore);
}
