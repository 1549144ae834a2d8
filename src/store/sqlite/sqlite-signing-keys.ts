// The signing_keys table (migration "token signing keys"): reads on the read connection (committed
// keys only), writes through the store's write queue on the write connection. A partial unique
// index lets at most one row be current (retired_at NULL).
import type Database from 'better-sqlite3';
import {
  SELECT_SIGNING_KEYS,
  signingKeyFrom,
  type SigningKeyRow,
  type NewSigningKey,
  type SigningKey,
  type SigningKeyStore,
} from '../signing-keys.js';

/** Runs `work` on the write connection inside one of the store's write transactions. */
export type WriteOnConnection = <T>(work: (db: Database.Database) => T) => Promise<T>;

function insert(db: Database.Database, key: NewSigningKey): void {
  db.prepare('INSERT INTO signing_keys (kid, private_key, created_at, retired_at, origin) VALUES (?, ?, ?, NULL, ?)').run(
    key.kid,
    key.privateKeyPem,
    key.createdAt,
    key.origin,
  );
}

export class SqliteSigningKeys implements SigningKeyStore {
  constructor(
    private readonly reader: Database.Database,
    private readonly write: WriteOnConnection,
  ) {}

  async all(): Promise<SigningKey[]> {
    return this.reader.prepare<[], SigningKeyRow>(SELECT_SIGNING_KEYS).all().map(signingKeyFrom);
  }

  initialise(key: NewSigningKey): Promise<SigningKey> {
    return this.write((db) => {
      const current = db.prepare<[], SigningKeyRow>(`${SELECT_SIGNING_KEYS} LIMIT 1`).get();
      if (current?.retired_at === null) return signingKeyFrom(current);
      insert(db, key);
      return { ...key, retiredAt: null };
    });
  }

  rotate(key: NewSigningKey, forgetRetiredBefore: number): Promise<void> {
    return this.write((db) => {
      db.prepare('DELETE FROM signing_keys WHERE retired_at < ?').run(forgetRetiredBefore);
      db.prepare('UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL').run(key.createdAt);
      insert(db, key);
    });
  }
}
