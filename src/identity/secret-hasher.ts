// The server's argon2id work on entity secrets: hashing new secrets and verifying presented ones,
// each within the bound on concurrent argon2 work (hash-slots.ts), and an unknown entity's
// secret checked against a dummy hash so that it costs the same time as a known one.
import { randomBytes } from 'node:crypto';
import { isKeyholdError } from '../errors.js';
import type { HashSlots } from './hash-slots.js';
import { hashSecret, needsRehash, verifySecret, type HashParams } from './secrets.js';

export interface Verdict {
  /** The stored hash checked against ('' when there was none). */
  hash: string;
  ok: boolean;
}

export class SecretHasher {
  /** A hash of a random secret: what an unknown entity's secret is checked against, so it costs the same time. */
  private dummyHash?: Promise<string>;
  /** The dummy hash up to its salt ($argon2id$v=…$m=…,t=…,p=…$): a stored hash beginning with it was made with today's parameters. */
  private currentPrefix?: string;

  constructor(
    private readonly params: HashParams,
    private readonly slots: HashSlots,
  ) {}

  hash(secret: string): Promise<string> {
    return this.slots.run('hash', () => hashSecret(secret, this.params));
  }

  /** Checks `secret` against `hash` (undefined: no such entity, '': no secret), or against a dummy hash when there is none, so all cost the same. */
  async verify(hash: string | undefined, secret: string): Promise<Verdict> {
    const stored = hash ?? '';
    // Made once, outside the slots: a refusal (KH_ERR_BUSY) must not be remembered as the dummy hash.
    this.dummyHash ??= hashSecret(randomBytes(32).toString('base64'), this.params).then((dummy) => {
      this.currentPrefix = dummy.slice(0, dummy.lastIndexOf('$', dummy.lastIndexOf('$') - 1) + 1);
      return dummy;
    });
    const against = stored || (await this.dummyHash);
    const ok = await this.slots.run('verify', () => verifySecret(against, secret));
    return { hash: stored, ok: ok && stored !== '' };
  }

  /**
   * A hash of `secret` with today's parameters when the verdict's hash was made with weaker ones,
   * else undefined. When the argon2 queue is full the upgrade waits for a calmer moment: it must
   * not fail a login with the right secret.
   */
  async upgrade(verdict: Verdict, secret: string): Promise<string | undefined> {
    // Parsing the hash again (needsRehash) only when it is not plainly today's kind: most logins.
    if (this.currentPrefix !== undefined && verdict.hash.startsWith(this.currentPrefix)) return undefined;
    if (!needsRehash(verdict.hash, this.params)) return undefined;
    return this.hash(secret).catch((err: unknown) => (isKeyholdError(err) && err.code === 'KH_ERR_BUSY' ? undefined : Promise.reject(err)));
  }
}
