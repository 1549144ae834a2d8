// The signing_keys table in PostgreSQL, shared by every server on the database. Reads go to the
// pool (committed keys only); initialise and rotate run as ordinary write transactions of the
// store, under its one write lock: two servers starting at once cannot both make a current key
// (the second sees the first's), and every other server's key ring sees the change through the
// change counter those transactions bump (src/api/key-ring.ts). A partial unique index keeps at
// most one row current besides.
import {
  SELECT_SIGNING_KEYS,
  signingKeyFrom,
  type SigningKeyRow,
  type NewSigningKey,
  type SigningKey,
  type SigningKeyStore,
} from '../signing-keys.js';
import type { Query } from './postgres-reader.js';

/** Runs `work` inside one of the store's write transactions, on its connection. */
export type WriteWithQuery = <T>(work: (query: Query) => Promise<T>) => Promise<T>;

async function insert(query: Query, key: NewSigningKey): Promise<void> {
  await query('INSERT INTO signing_keys (kid, private_key, created_at, retired_at, origin) VALUES ($1, $2, $3, NULL, $4)', [
    key.kid,
    key.privateKeyPem,
    key.createdAt,
    key.origin,
  ]);
}

export class PostgresSigningKeys implements SigningKeyStore {
  constructor(
    private readonly query: Query,
    private readonly write: WriteWithQuery,
  ) {}

  async all(): Promise<SigningKey[]> {
    return (await this.query<SigningKeyRow>(SELECT_SIGNING_KEYS)).map(signingKeyFrom);
  }

  initialise(key: NewSigningKey): Promise<SigningKey> {
    return this.write(async (query) => {
      const [current] = await query<SigningKeyRow>(`${SELECT_SIGNING_KEYS} LIMIT 1`);
      if (current?.retired_at === null) return signingKeyFrom(current);
      await insert(query, key);
      return { ...key, retiredAt: null };
    });
  }

  rotate(key: NewSigningKey, forgetRetiredBefore: number): Promise<void> {
    return this.write(async (query) => {
      await query('DELETE FROM signing_keys WHERE retired_at < $1', [forgetRetiredBefore]);
      await query('UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL', [key.createdAt]);
      await insert(query, key);
    });
  }
}
