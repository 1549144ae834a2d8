// Access tokens: EdDSA (Ed25519) JWTs, short-lived, carrying the entity id (`sub`), its
// effective capabilities (`caps`) and its token generation (`gen`) at the time of login. The
// signing key is created in the data directory on first start (mode 0600) and reused, so tokens
// survive a restart. This file checks what the token says by itself (signature, issuer, audience,
// expiry, a plausible issue time); whether it still holds against the store (revoked by a logout,
// a lock, a secret or capability change, or its entity gone) is checked per request by
// revocation.ts.
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CAPABILITIES, type Capability } from 'keyhold-plugin-sdk';
import { errors as joseErrors, exportJWK, importPKCS8, importSPKI, jwtVerify, SignJWT, type CryptoKey, type JWK } from 'jose';
import { KeyholdError } from '../errors.js';

const ALGORITHM = 'EdDSA';
const ISSUER = 'keyhold';
/** Who tokens are for: this API. A JWT the same key signed for anything else is refused. */
const AUDIENCE = 'keyhold';
/** How far in the future a token's issue time may be (clocks of several servers on one database drift a little). */
export const ISSUED_AT_SKEW_SECONDS = 60;
export const SIGNING_KEY_FILE = 'token-signing-key.pem';

/** What a valid token says about its bearer. */
export interface TokenClaims {
  /** The entity id. */
  sub: string;
  caps: Capability[];
  /** The entity's token generation at login; a logout, a lock or a secret change replaces it. */
  gen: string;
  /** Expiry, seconds since the epoch. */
  exp: number;
  iat: number;
}

export interface IssuedToken {
  token: string;
  expiresAt: string;
}

function loadOrCreateKeyPem(dataDir: string): string {
  const file = join(dataDir, SIGNING_KEY_FILE);
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ed25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  // 'wx': never overwrite a key another process created meanwhile.
  try {
    writeFileSync(file, privateKey, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readFileSync(file, 'utf8');
    throw err;
  }
  return privateKey;
}

function invalid(): KeyholdError {
  return new KeyholdError('KH_ERR_UNAUTHENTICATED', 'the token is not valid');
}

function isCapabilityList(value: unknown): value is Capability[] {
  return Array.isArray(value) && value.every((c) => (CAPABILITIES as readonly unknown[]).includes(c));
}

export class TokenService {
  private constructor(
    private readonly privateKey: CryptoKey,
    private readonly publicKey: CryptoKey,
    readonly publicJwk: JWK,
    readonly ttlMs: number,
  ) {}

  /** Loads the signing key from `dataDir`, creating it on first start. */
  static async open(dataDir: string, ttlMs: number): Promise<TokenService> {
    const pem = loadOrCreateKeyPem(dataDir);
    const privateKey = await importPKCS8(pem, ALGORITHM, { extractable: false });
    const spki = createPublicKey(createPrivateKey(pem)).export({ type: 'spki', format: 'pem' }).toString();
    const publicKey = await importSPKI(spki, ALGORITHM, { extractable: true });
    return new TokenService(privateKey, publicKey, { ...(await exportJWK(publicKey)), alg: ALGORITHM, use: 'sig' }, ttlMs);
  }

  async issue(entityId: string, caps: readonly Capability[], generation: string): Promise<IssuedToken> {
    const now = Date.now();
    const expires = Math.floor((now + this.ttlMs) / 1000);
    const token = await new SignJWT({ caps: [...caps], gen: generation })
      .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(entityId)
      .setJti(randomUUID())
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(expires)
      .sign(this.privateKey);
    return { token, expiresAt: new Date(expires * 1000).toISOString() };
  }

  /**
   * Returns the claims of a token that is valid by itself (not whether it was revoked since);
   * throws KH_ERR_TOKEN_EXPIRED or KH_ERR_UNAUTHENTICATED.
   */
  async verify(token: string): Promise<TokenClaims> {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.publicKey, {
        issuer: ISSUER,
        audience: AUDIENCE,
        algorithms: [ALGORITHM],
        requiredClaims: ['sub', 'exp', 'iat', 'jti'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new KeyholdError('KH_ERR_TOKEN_EXPIRED', 'the token has expired; log in again');
      throw invalid();
    }
    const { sub, caps, gen, exp, iat } = payload;
    if (typeof sub !== 'string' || !isCapabilityList(caps) || typeof gen !== 'string' || gen === '') throw invalid();
    // Bounds this server would never have issued: issued in the future, or living longer than tokenTtl
    // (a token signed for longer, or under a longer tokenTtl than today's, is refused).
    const now = Math.floor(Date.now() / 1000);
    if (iat! > now + ISSUED_AT_SKEW_SECONDS || exp! - iat! > Math.ceil(this.ttlMs / 1000)) throw invalid();
    return { sub, caps, gen, exp: exp!, iat: iat! };
  }
}
