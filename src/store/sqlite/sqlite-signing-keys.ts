// The signing_keys table (migration "token signing keys"): reads on the read connection (committed
// keys only), writes through the store's write queue on the write connection. A partial unique
// index lets at most one row be current (retired_at NULL).
import type Database from 'better-sqlite3';
import type { NewSigningKey, SigningKey, SigningKeyStore } from '../signing-keys.js';

interface KeyRow {
  kid: string;
  private_key: string;
  created_at: number;
  retired_at: number | null;
  origin: SigningKey['origin'];
}

/** Runs `work` on the write connection inside one of the store's write transactions. */
export type WriteOnConnection = <T>(work: (db: Database.Database) => T) => Promise<T>;

const SELECT_KEYS =
  'SELECT kid, private_key, created_at, retired_at, origin FROM signing_keys ORDER BY retired_at IS NOT NULL, coalesce(retired_at, created_at) DESC, kid';

function keyFrom(row: KeyRow): SigningKey {
  return { kid: row.kid, privateKeyPem: row.private_key, createdAt: row.created_at, retiredAt: row.retired_at, origin: row.origin };
}

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
    return this.reader.prepare<[], KeyRow>(SELECT_KEYS).all().map(keyFrom);
  }

  initialise(key: NewSigningKey): Promise<SigningKey> {
    return this.write((db) => {
      const current = db.prepare<[], KeyRow>(`${SELECT_KEYS} LIMIT 1`).get();
      if (current?.retired_at === null) return keyFrom(current);
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
