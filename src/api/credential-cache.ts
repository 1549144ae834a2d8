// Forward authentication's verified-credentials cache. A browser sends the same Basic credentials
// with every sub-request of a page; without the cache each would cost an argon2 check and an
// AuthCheck. An entry is keyed by HMAC-SHA256(a random per-process key, id NUL secret), so no
// secret is held, and stands for at most `ttlMs`, and only while the store shows no commit since
// it was checked, or, after one, while the entity's access profile is exactly the one verified:
// same token generation (no secret change, lock or logout since), not destroyed, same groups and
// capabilities. So a change made through any keyhold server on this database ends it at once
// (the counter is revocation.ts's), and the TTL bounds the rest (a plugin's policy changing its
// mind). A refused attempt on an id drops that id's entries, so a lockout that follows failures
// (fail2lock) holds at once. Concurrent misses on one key share one check.
import { createHmac, randomBytes } from 'node:crypto';
import { loadAccessProfile, sameProfile, type AccessProfile } from '../identity/access-profile.js';
import type { Store } from '../store/store.js';

interface Entry {
  profile: AccessProfile;
  expiresAt: number;
  /** The store's change counter the profile was last known to hold at. */
  checkedAt: number;
}

export interface CacheSettings {
  /** 0: no cache; every check runs. */
  ttlMs: number;
  maxEntries: number;
}

export interface CheckResult {
  /** null: the check passed but the entity is gone since. */
  profile: AccessProfile | null;
  /** Answered without a check of its own: from an entry, or by joining a check in flight. */
  cached: boolean;
}

export class CredentialCache {
  private readonly key = randomBytes(32);
  /** In insertion order, which is expiry order (one TTL for all). */
  private readonly entries = new Map<string, Entry>();
  /** Entity id → the keys of its entries. */
  private readonly keysOf = new Map<string, Set<string>>();
  private readonly inFlight = new Map<string, Promise<AccessProfile | null>>();

  constructor(
    private readonly store: Pick<Store, 'reader' | 'changeCounter'>,
    private readonly settings: CacheSettings,
    private readonly now: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.settings.ttlMs > 0;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The profile of `id` once `secret` is known to be right: from the cache, or by `verify` (the
   * AuthCheck, then the entity's profile), whose result is kept only when the entity's token
   * generation did not change during it. Rejects with whatever `verify` throws.
   */
  async check(id: string, secret: string, verify: () => Promise<AccessProfile | null>): Promise<CheckResult> {
    if (!this.enabled) return { profile: await verify(), cached: false };
    const key = createHmac('sha256', this.key).update(id).update('\0').update(secret).digest('base64');
    const entry = this.entries.get(key);
    if (entry && (await this.stillHolds(key, entry))) return { profile: entry.profile, cached: true };
    const running = this.inFlight.get(key);
    if (running) return { profile: await running, cached: true };
    const checking = this.fill(key, id, verify).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, checking);
    return { profile: await checking, cached: false };
  }

  /** Drops every entry of `id`: an attempt on it was refused. */
  forget(id: string): void {
    for (const key of this.keysOf.get(id) ?? []) this.entries.delete(key);
    this.keysOf.delete(id);
  }

  private async stillHolds(key: string, entry: Entry): Promise<boolean> {
    if (entry.expiresAt > this.now()) {
      const counter = await this.store.changeCounter();
      if (entry.checkedAt === counter) return true;
      // Read after `counter`, so at least as new: the entry holds at it if nothing of the profile changed.
      const current = await loadAccessProfile(this.store.reader, entry.profile.id);
      if (current && sameProfile(current, entry.profile)) {
        entry.checkedAt = counter;
        return true;
      }
    }
    // Unless a concurrent check has put a newer entry in its place meanwhile.
    if (this.entries.get(key) === entry) this.drop(key, entry.profile.id);
    return false;
  }

  private async fill(key: string, id: string, verify: () => Promise<AccessProfile | null>): Promise<AccessProfile | null> {
    // Both read before the check: a secret change, lock or logout committed during it replaces the
    // generation, and any commit moves the counter, so a result racing one is not kept as newer than it is.
    const counter = await this.store.changeCounter();
    const generation = await this.store.reader.tokenGeneration(id);
    const profile = await verify();
    if (profile && profile.generation === generation) this.add(key, profile, counter);
    return profile;
  }

  private add(key: string, profile: AccessProfile, counter: number): void {
    const now = this.now();
    this.dropExpired(now);
    if (this.entries.size >= this.settings.maxEntries) {
      const [oldestKey, oldest] = this.entries.entries().next().value!;
      this.drop(oldestKey, oldest.profile.id);
    }
    this.entries.delete(key);
    this.entries.set(key, { profile, expiresAt: now + this.settings.ttlMs, checkedAt: counter });
    let keys = this.keysOf.get(profile.id);
    if (!keys) this.keysOf.set(profile.id, (keys = new Set()));
    keys.add(key);
  }

  private dropExpired(now: number): void {
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt > now) return;
      this.drop(key, entry.profile.id);
    }
  }

  private drop(key: string, id: string): void {
    this.entries.delete(key);
    const keys = this.keysOf.get(id);
    keys?.delete(key);
    if (keys?.size === 0) this.keysOf.delete(id);
  }
}
