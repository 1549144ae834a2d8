// Access tokens: EdDSA (Ed25519) JWTs, short-lived, carrying the entity id (`sub`), its
// effective capabilities (`caps`) and its token generation (`gen`) at the time of login, signed by
// the current key of the key ring (key-ring.ts: the keys live in the store, shared by every server
// on the database) and naming it in the `kid` header. This file checks what the token says by
// itself (signature, issuer, audience, expiry, a plausible issue time); whether it still holds
// against the store (revoked by a logout, a lock, a secret or capability change, or its entity
// gone) is checked per request by revocation.ts.
import { randomUUID } from 'node:crypto';
import { CAPABILITIES, type Capability } from 'keyhold-plugin-sdk';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, SignJWT, type JWK, type JWTPayload } from 'jose';
import { KeyholdError } from '../errors.js';
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import { ALGORITHM, ISSUED_AT_SKEW_SECONDS, KeyRing, type SigningKeyView } from './key-ring.js';

export { ISSUED_AT_SKEW_SECONDS };
const ISSUER = 'keyhold';
/** Who tokens are for: this API. A JWT the same key signed for anything else is refused. */
const AUDIENCE = 'keyhold';

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

function invalid(): KeyholdError {
  return new KeyholdError('KH_ERR_UNAUTHENTICATED', 'the token is not valid');
}

function isCapabilityList(value: unknown): value is Capability[] {
  return Array.isArray(value) && value.every((c) => (CAPABILITIES as readonly unknown[]).includes(c));
}

export class TokenService {
  constructor(
    private readonly keys: KeyRing,
    readonly ttlMs: number,
  ) {}

  /** Reads the signing keys from the store (importing `dataDir`'s key file of an older install, or creating a key, on the first start). */
  static async open(store: Pick<Store, 'keys' | 'changeCounter'>, ttlMs: number, dataDir: string, logger: Logger): Promise<TokenService> {
    return new TokenService(await KeyRing.open(store, ttlMs, dataDir, logger), ttlMs);
  }

  async issue(entityId: string, caps: readonly Capability[], generation: string): Promise<IssuedToken> {
    const now = Date.now();
    const expires = Math.floor((now + this.ttlMs) / 1000);
    const { kid, key } = await this.keys.signing();
    const token = await new SignJWT({ caps: [...caps], gen: generation })
      .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT', kid })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(entityId)
      .setJti(randomUUID())
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(expires)
      .sign(key);
    return { token, expiresAt: new Date(expires * 1000).toISOString() };
  }

  /**
   * Returns the claims of a token that is valid by itself (not whether it was revoked since);
   * throws KH_ERR_TOKEN_EXPIRED or KH_ERR_UNAUTHENTICATED.
   */
  async verify(token: string): Promise<TokenClaims> {
    let kid: unknown;
    try {
      ({ kid } = decodeProtectedHeader(token));
    } catch {
      throw invalid();
    }
    if (kid !== undefined && typeof kid !== 'string') throw invalid();
    // An unknown kid, or one retired more than a token lifetime ago, verifies nothing.
    const candidates = await this.keys.verifying(kid);
    let payload: JWTPayload | undefined;
    for (const publicKey of candidates) {
      try {
        ({ payload } = await jwtVerify(token, publicKey, {
          issuer: ISSUER,
          audience: AUDIENCE,
          algorithms: [ALGORITHM],
          requiredClaims: ['sub', 'exp', 'iat', 'jti'],
        }));
        break;
      } catch (err) {
        if (err instanceof joseErrors.JWTExpired) throw new KeyholdError('KH_ERR_TOKEN_EXPIRED', 'the token has expired; log in again');
      }
    }
    if (payload === undefined) throw invalid();
    const { sub, caps, gen, exp, iat } = payload;
    if (typeof sub !== 'string' || !isCapabilityList(caps) || typeof gen !== 'string' || gen === '') throw invalid();
    // Bounds this server would never have issued: issued in the future, or living longer than tokenTtl
    // (a token signed for longer, or under a longer tokenTtl than today's, is refused).
    const now = Math.floor(Date.now() / 1000);
    if (iat! > now + ISSUED_AT_SKEW_SECONDS || exp! - iat! > Math.ceil(this.ttlMs / 1000)) throw invalid();
    return { sub, caps, gen, exp: exp!, iat: iat! };
  }

  /** The public keys that verify tokens now (JWKS), each with its kid. */
  publicJwks(): Promise<JWK[]> {
    return this.keys.publicJwks();
  }

  /** Makes a new current signing key; the previous one keeps verifying its tokens for one lifetime. */
  rotateKeys(): Promise<SigningKeyView> {
    return this.keys.rotate();
  }

  listKeys(): Promise<SigningKeyView[]> {
    return this.keys.list();
  }
}
