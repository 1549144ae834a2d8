// Entity secrets: argon2id, a memory-hard hash. The encoded hash ($argon2id$v=19$m=…,t=…,p=…$salt$hash)
// carries its own parameters, so raising them later only affects new hashes, and needsRehash tells
// which stored ones are weaker than the current setting.
import argon2 from 'argon2';

export interface HashParams {
  /** Memory in KiB. */
  memoryCost: number;
  /** Iterations. */
  timeCost: number;
  /** Lanes. */
  parallelism: number;
}

/** OWASP's recommended argon2id setting (m=19 MiB, t=2, p=1): about 20–40 ms per hash on a server core. */
export const DEFAULT_HASH_PARAMS: Readonly<HashParams> = Object.freeze({ memoryCost: 19456, timeCost: 2, parallelism: 1 });

export function resolveHashParams(params: Partial<HashParams> = {}): HashParams {
  return { ...DEFAULT_HASH_PARAMS, ...params };
}

export function hashSecret(secret: string, params: HashParams = DEFAULT_HASH_PARAMS): Promise<string> {
  return argon2.hash(secret, { type: argon2.argon2id, ...params });
}

/** Constant-time comparison (argon2.verify recomputes the hash with the encoded parameters). */
export function verifySecret(hash: string, secret: string): Promise<boolean> {
  return argon2.verify(hash, secret);
}

/** True when `hash` was made with parameters other than `params` (e.g. before they were raised). */
export function needsRehash(hash: string, params: HashParams = DEFAULT_HASH_PARAMS): boolean {
  return argon2.needsRehash(hash, params);
}
