// The token signing keys' part of the store: shared by every server on one database, so a token
// one server issued is accepted by the others and a rotation made through one reaches all.
// Exactly one key is current (signs new tokens); a retired key keeps verifying the tokens it
// signed until one token lifetime after its retirement (src/api/key-ring.ts decides that).
// Private keys are PKCS#8 PEM text: the store holds them as it holds secret hashes, owner-only.

/** One signing key as stored. Times in milliseconds since the epoch. */
export interface SigningKey {
  /** The key id tokens carry in their `kid` header: the RFC 7638 thumbprint of the public key. */
  kid: string;
  privateKeyPem: string;
  createdAt: number;
  /** When a rotation replaced it as the current key; null for the current key. */
  retiredAt: number | null;
  /** `imported`: taken over from the data directory's token-signing-key.pem (tokens it signed carry no kid). */
  origin: 'generated' | 'imported';
}

export type NewSigningKey = Omit<SigningKey, 'retiredAt'>;

/** A row of the signing_keys table, the same in SQLite and PostgreSQL. */
export interface SigningKeyRow {
  kid: string;
  private_key: string;
  created_at: number;
  retired_at: number | null;
  origin: SigningKey['origin'];
}

/** Every key, the current one first, then the retired ones newest first (SigningKeyStore.all's order). */
export const SELECT_SIGNING_KEYS =
  'SELECT kid, private_key, created_at, retired_at, origin FROM signing_keys ORDER BY retired_at IS NOT NULL, coalesce(retired_at, created_at) DESC, kid';

export function signingKeyFrom(row: SigningKeyRow): SigningKey {
  return { kid: row.kid, privateKeyPem: row.private_key, createdAt: row.created_at, retiredAt: row.retired_at, origin: row.origin };
}

export interface SigningKeyStore {
  /** Every key kept, the current one first, then the retired ones newest first. */
  all(): Promise<SigningKey[]>;
  /**
   * Makes `key` the current key when the store has none yet (the first start, or the import of an
   * older install's key file), in one write transaction; returns the current key after it, which is
   * another server's when it won a race between servers starting at once.
   */
  initialise(key: NewSigningKey): Promise<SigningKey>;
  /**
   * In one write transaction: retires the current key at `key.createdAt`, makes `key` the current
   * one, and deletes the keys retired before `forgetRetiredBefore` (they verify nothing any more).
   */
  rotate(key: NewSigningKey, forgetRetiredBefore: number): Promise<void>;
}
