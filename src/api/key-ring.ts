// The token signing keys as the API uses them: the current key signs, the current and the
// recently retired ones verify (a retired key until one token lifetime after its retirement, plus
// the issue-time skew, so every token it signed can live out its life). The keys live in the store
// (src/store/signing-keys.ts), shared by every server on the database; this keeps them imported
// in memory and reads them again when the store changed, so a rotation made through another
// server is seen here: at most a second late on the common path, at once for a token carrying a
// kid not known here yet. A kid unknown after that is refused without another read until the
// store changes again (the store's changeCounter), so made-up kids cost no reads.
// An install from before the keys moved into the store has token-signing-key.pem in its data
// directory: the first start imports it as the current key, so tokens issued before keep working.
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, importPKCS8, importSPKI, type CryptoKey, type JWK } from 'jose';
import type { Logger } from 'pino';
import type { NewSigningKey, SigningKey } from '../store/signing-keys.js';
import type { Store } from '../store/store.js';

export const ALGORITHM = 'EdDSA';
/** How far in the future a token's issue time may be (clocks of several servers on one database drift a little). */
export const ISSUED_AT_SKEW_SECONDS = 60;
/** Where earlier versions kept their one signing key; imported into the store by the first start that finds it (and no key in the store). */
export const LEGACY_KEY_FILE = 'token-signing-key.pem';
/** How often the common path looks whether the store changed (a rotation through another server). */
const RECHECK_MS = 1000;

/** A key as `keyhold keys list` shows it: never the private material. */
export interface SigningKeyView {
  kid: string;
  /** current: signs new tokens; retired: verifies the tokens it signed until acceptedUntil; expired: verifies nothing. */
  state: 'current' | 'retired' | 'expired';
  origin: SigningKey['origin'];
  createdAt: string;
  retiredAt: string | null;
  /** Until when tokens it signed are accepted (ISO 8601); null for the current key. */
  acceptedUntil: string | null;
}

interface LoadedKey {
  record: SigningKey;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

async function load(record: SigningKey): Promise<LoadedKey> {
  const privateKey = await importPKCS8(record.privateKeyPem, ALGORITHM, { extractable: false });
  const spki = createPublicKey(createPrivateKey(record.privateKeyPem)).export({ type: 'spki', format: 'pem' }).toString();
  const publicKey = await importSPKI(spki, ALGORITHM, { extractable: true });
  return { record, privateKey, publicKey, publicJwk: { ...(await exportJWK(publicKey)), kid: record.kid, alg: ALGORITHM, use: 'sig' } };
}

/** A key record for `pem`, its kid the RFC 7638 thumbprint of its public key (the same on every server). */
async function recordOf(pem: string, origin: SigningKey['origin'], createdAt: number): Promise<NewSigningKey> {
  const jwk = createPublicKey(createPrivateKey(pem)).export({ format: 'jwk' }) as JWK;
  return { kid: await calculateJwkThumbprint(jwk), privateKeyPem: pem, createdAt, origin };
}

function newKeyPem(): string {
  return generateKeyPairSync('ed25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  }).privateKey;
}

function readLegacyKey(dataDir: string): string | undefined {
  try {
    return readFileSync(join(dataDir, LEGACY_KEY_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export class KeyRing {
  private keys = new Map<string, LoadedKey>();
  private current!: LoadedKey;
  /** The store's changeCounter when the keys were last read. */
  private readAt = Number.NaN;
  private checkedAt = 0;
  private reading: Promise<void> | undefined;

  private constructor(
    private readonly store: Pick<Store, 'keys' | 'changeCounter'>,
    /** How long tokens live: how long a retired key keeps verifying. */
    private readonly ttlMs: number,
  ) {}

  /** Reads the keys from the store; on the first start, imports the data directory's legacy key file or creates a key. */
  static async open(store: Pick<Store, 'keys' | 'changeCounter'>, ttlMs: number, dataDir: string, logger: Logger): Promise<KeyRing> {
    const ring = new KeyRing(store, ttlMs);
    const legacyPem = readLegacyKey(dataDir);
    if ((await store.keys.all()).length === 0) {
      const candidate = await recordOf(legacyPem ?? newKeyPem(), legacyPem === undefined ? 'generated' : 'imported', Date.now());
      const current = await store.keys.initialise(candidate);
      if (legacyPem !== undefined && current.kid === candidate.kid)
        logger.warn(
          { kid: current.kid, file: join(dataDir, LEGACY_KEY_FILE) },
          `the token signing key ${join(dataDir, LEGACY_KEY_FILE)} was imported into the database as the current key (kid ${current.kid}): tokens issued before stay valid; the file is no longer read and can be removed (securely: it can sign tokens)`,
        );
    } else if (legacyPem !== undefined) {
      logger.warn(
        { file: join(dataDir, LEGACY_KEY_FILE) },
        `${join(dataDir, LEGACY_KEY_FILE)} is no longer used (the signing keys are in the database since it was imported): remove it (securely: it can sign tokens)`,
      );
    }
    await ring.read();
    return ring;
  }

  /** The key new tokens are signed with. */
  async signing(): Promise<{ kid: string; key: CryptoKey }> {
    await this.recheck();
    return { kid: this.current.record.kid, key: this.current.privateKey };
  }

  /**
   * The public key to verify a token with `kid` (undefined: a token from before kids, which only an
   * imported key can have signed), or undefined when no key that still verifies has that id.
   */
  async verifying(kid: string | undefined, now = Date.now()): Promise<CryptoKey[]> {
    await this.recheck();
    if (kid === undefined)
      return this.accepted(now)
        .filter((k) => k.record.origin === 'imported')
        .map((k) => k.publicKey);
    if (!this.keys.has(kid)) await this.readIfChanged();
    const key = this.keys.get(kid);
    return key && this.accepts(key, now) ? [key.publicKey] : [];
  }

  /** The public keys that still verify, for GET /v1/auth/jwks. */
  async publicJwks(): Promise<JWK[]> {
    await this.recheck();
    return this.accepted(Date.now()).map((k) => k.publicJwk);
  }

  /** Makes a new current key and retires the current one (its tokens stay valid for one lifetime); forgets keys that verify nothing any more. */
  async rotate(): Promise<SigningKeyView> {
    const now = Date.now();
    const key = await recordOf(newKeyPem(), 'generated', now);
    await this.store.keys.rotate(key, now - this.graceMs());
    await this.read();
    return this.view(this.keys.get(key.kid)!.record, now);
  }

  async list(): Promise<SigningKeyView[]> {
    await this.read();
    const now = Date.now();
    return [...this.keys.values()].map((k) => this.view(k.record, now));
  }

  /** How long after its retirement a key still verifies. */
  private graceMs(): number {
    return this.ttlMs + ISSUED_AT_SKEW_SECONDS * 1000;
  }

  private accepts(key: LoadedKey, now: number): boolean {
    return key.record.retiredAt === null || now < key.record.retiredAt + this.graceMs();
  }

  private accepted(now: number): LoadedKey[] {
    return [...this.keys.values()].filter((k) => this.accepts(k, now));
  }

  private view(record: SigningKey, now: number): SigningKeyView {
    const until = record.retiredAt === null ? null : record.retiredAt + this.graceMs();
    return {
      kid: record.kid,
      state: until === null ? 'current' : now < until ? 'retired' : 'expired',
      origin: record.origin,
      createdAt: new Date(record.createdAt).toISOString(),
      retiredAt: record.retiredAt === null ? null : new Date(record.retiredAt).toISOString(),
      acceptedUntil: until === null ? null : new Date(until).toISOString(),
    };
  }

  /** At most every RECHECK_MS: reads the keys again if the store changed. */
  private async recheck(): Promise<void> {
    if (Date.now() - this.checkedAt < RECHECK_MS) return;
    await this.readIfChanged();
  }

  private async readIfChanged(): Promise<void> {
    this.checkedAt = Date.now();
    if ((await this.store.changeCounter()) !== this.readAt) await this.read();
  }

  /** Reads every key from the store; concurrent callers share one read. */
  private read(): Promise<void> {
    this.reading ??= (async () => {
      try {
        const counter = await this.store.changeCounter();
        const records = await this.store.keys.all();
        const keys = new Map<string, LoadedKey>();
        for (const record of records) {
          const known = this.keys.get(record.kid);
          // A key's material never changes (only its retirement): imported once.
          keys.set(record.kid, known ? { ...known, record } : await load(record));
        }
        const current = records.find((r) => r.retiredAt === null);
        if (!current) throw new Error('the store holds no current token signing key');
        this.keys = keys;
        this.current = keys.get(current.kid)!;
        this.readAt = counter;
      } finally {
        this.reading = undefined;
      }
    })();
    return this.reading;
  }
}
