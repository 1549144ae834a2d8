// Login throttling in front of the secret check, modelled on Kanidm's soft lock (growing delays,
// then a lock) and on smart-lockout's familiar addresses. Three keys count failures:
//   - the client address, and the (id, address) pair: growing delays, then a soft lock;
//   - the presented id across all addresses (known or not, so the throttle tells nothing):
//     growing delays up to MAX_DELAY_STEPS base delays, no soft lock, and not applied from an
//     address the entity logged in from recently (so a third party cannot lock its owner out).
// While a key's delay runs, an attempt on it is refused without running argon2, and a refused
// attempt is not a failure (else polling would extend a lock forever). Attempts on one id run one
// at a time, so a burst of parallel guesses gets one guess per delay. State lives in the store
// (it survives a restart); it is written on failures, and on a success only when it changes something.
import type { Store, ThrottleRecord } from '../store/store.js';
import { AuthFailed, isAuthFailed } from './auth-failure.js';

export interface LoginThrottleSettings {
  enabled: boolean;
  /** The delay after the 1st and 2nd failure; later steps are 3×, 5× and 10× it. 0: no delays (the soft lock stays). */
  baseDelayMs: number;
  /** Failures on one address, or one (id, address) pair, from which on it is soft-locked. */
  softLockAfter: number;
  softLockMs: number;
  /** A key's failures are all forgotten once its last failure is this old. */
  forgetAfterMs: number;
  /** How long a successful login makes its address familiar to the entity. */
  familiarForMs: number;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export const DEFAULT_LOGIN_THROTTLE: Readonly<LoginThrottleSettings> = Object.freeze({
  enabled: true,
  baseDelayMs: 1000,
  softLockAfter: 100,
  softLockMs: HOUR,
  forgetAfterMs: HOUR,
  familiarForMs: 30 * DAY,
});

/** Kanidm's steps, as [from this many failures on, this many base delays]: 1 s for 1–2, 3 s for 3–8, 5 s for 9–24, 10 s from 25. */
const DELAY_STEPS: readonly (readonly [number, number])[] = [
  [25, 10],
  [9, 5],
  [3, 3],
  [1, 1],
];
/** The per-id delay never exceeds this many base delays (the last step): the longest an owner at an unfamiliar address waits after a third party's last failure. */
export const MAX_DELAY_STEPS = 10;

/** Attempts on one id waiting for their turn; beyond this one more is refused as throttled. */
export const MAX_WAITING_PER_ID = 16;
/** Expired rows are deleted at most this often, inside a failure's write. */
const PRUNE_INTERVAL_MS = 10 * 60_000;

export type ThrottleKeyKind = 'address' | 'pair' | 'id';
const KINDS: readonly ThrottleKeyKind[] = ['address', 'pair', 'id'];

type Keys = Record<ThrottleKeyKind, string>;

/** Store keys; an address holds no space, so `pair` reads back unambiguously. */
function keysFor(id: string, address: string): Keys {
  return { address: `address ${address}`, pair: `pair ${address} ${id}`, id: `id ${id}` };
}

/** The delay after the `failures`-th failure in a row. */
export function delayAfter(failures: number, baseDelayMs: number): number {
  const step = DELAY_STEPS.find(([from]) => failures >= from);
  return step ? step[1] * baseDelayMs : 0;
}

export class LoginThrottle {
  private readonly queues = new Map<string, { tail: Promise<unknown>; size: number }>();
  private lastPrune = 0;

  constructor(
    private readonly store: Pick<Store, 'reader' | 'write'>,
    private readonly settings: LoginThrottleSettings = DEFAULT_LOGIN_THROTTLE,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Runs `check` (the secret check for `id` presented from `address`) unless a delay or soft lock
   * refuses it first with AuthFailed('throttled'). An AuthFailed from `check` counts as a failure;
   * any other error (a plugin crash, KH_ERR_BUSY) counts as nothing. A soft lock begun by this
   * failure is added to the error's logDetail as `softLocked`.
   */
  attempt<T>(id: string, address: string, check: () => Promise<T>): Promise<T> {
    if (!this.settings.enabled) return check();
    return this.oneAtATime(id, () => this.guarded(id, address, check));
  }

  private async guarded<T>(id: string, address: string, check: () => Promise<T>): Promise<T> {
    const keys = keysFor(id, address);
    const [found, lastLogin] = await Promise.all([
      this.store.reader.throttleRecords(KINDS.map((k) => keys[k])),
      this.store.reader.lastLoginFrom(id, address),
    ]);
    const records = new Map(found.map((r) => [r.key, r]));
    const at = this.now();
    const familiar = lastLogin !== undefined && at - lastLogin < this.settings.familiarForMs;
    for (const kind of KINDS) {
      const until = records.get(keys[kind])?.blockedUntil ?? 0;
      if (until > at && !(kind === 'id' && familiar))
        throw new AuthFailed('throttled', { key: kind, until: new Date(until).toISOString() });
    }
    let result: T;
    try {
      result = await check();
    } catch (err) {
      if (isAuthFailed(err)) {
        const softLocked = await this.recordFailure(keys);
        if (softLocked.length > 0) err.logDetail.softLocked = softLocked;
      }
      throw err;
    }
    await this.recordSuccess(id, address, keys, records, lastLogin);
    return result;
  }

  /** Counts a failure on every key, in one transaction (so concurrent failures on one address all count); returns the kinds it soft-locked. */
  private recordFailure(keys: Keys): Promise<ThrottleKeyKind[]> {
    const at = this.now();
    const { softLockAfter, softLockMs, forgetAfterMs, familiarForMs, baseDelayMs } = this.settings;
    return this.store.write(async (tx) => {
      const current = new Map((await tx.throttleRecords(KINDS.map((k) => keys[k]))).map((r) => [r.key, r]));
      const softLocked: ThrottleKeyKind[] = [];
      const next = KINDS.map((kind): ThrottleRecord => {
        const before = current.get(keys[kind]);
        const failures = (before && at - before.lastFailure < forgetAfterMs ? before.failures : 0) + 1;
        const lock = kind !== 'id' && failures >= softLockAfter;
        if (lock && !(before && before.blockedUntil > at)) softLocked.push(kind);
        // Never shortened: a soft lock stands even when a failure that passed the check just before it lands after it.
        const blockedUntil = Math.max(before?.blockedUntil ?? 0, at + (lock ? softLockMs : delayAfter(failures, baseDelayMs)));
        return { key: keys[kind], failures, lastFailure: at, blockedUntil };
      });
      await tx.putThrottleRecords(next);
      if (at - this.lastPrune >= PRUNE_INTERVAL_MS) {
        this.lastPrune = at;
        await tx.pruneLoginThrottle(at, at - forgetAfterMs, at - familiarForMs);
      }
      return softLocked;
    });
  }

  /** Clears the pair and id counts and remembers the address, writing only when that changes something. */
  private async recordSuccess(
    id: string,
    address: string,
    keys: Keys,
    records: ReadonlyMap<string, ThrottleRecord>,
    lastLogin: number | undefined,
  ): Promise<void> {
    const at = this.now();
    const cleared = [keys.pair, keys.id].filter((key) => records.has(key));
    // The familiar address's time is refreshed at most once a day (more often only when it is remembered for less than two days).
    const remember = lastLogin === undefined || at - lastLogin >= Math.min(DAY, this.settings.familiarForMs / 2);
    if (cleared.length === 0 && !remember) return;
    await this.store.write(async (tx) => {
      if (cleared.length > 0) await tx.deleteThrottleRecords(cleared);
      if (remember) await tx.rememberLogin(id, address, at);
    });
  }

  /** Runs `work` after every earlier attempt on `id` has settled; refuses when too many already wait. */
  private async oneAtATime<T>(id: string, work: () => Promise<T>): Promise<T> {
    const queue = this.queues.get(id) ?? { tail: Promise.resolve(), size: 0 };
    if (queue.size >= MAX_WAITING_PER_ID) throw new AuthFailed('throttled', { key: 'id', waiting: queue.size });
    queue.size++;
    this.queues.set(id, queue);
    const run = queue.tail.then(work);
    queue.tail = run.catch(() => undefined);
    try {
      return await run;
    } finally {
      if (--queue.size === 0) this.queues.delete(id);
    }
  }
}
