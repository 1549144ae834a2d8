// The login throttle's rules, on a real SQLite store with a clock the test moves: growing delays,
// refused attempts not counted, the soft lock, the per-id cap, familiar addresses, what a success
// clears, decay, pruning, one attempt at a time per id, and when it writes.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { parseEntity } from 'keyhold-plugin-sdk';
import { KeyholdError } from '../../src/errors.js';
import { AuthFailed } from '../../src/identity/auth-failure.js';
import {
  DEFAULT_LOGIN_THROTTLE,
  delayAfter,
  LoginThrottle,
  MAX_DELAY_STEPS,
  MAX_WAITING_PER_ID,
  type LoginThrottleSettings,
} from '../../src/identity/login-throttle.js';
import type { Store } from '../../src/store/store.js';
import { forEachStore, newStoreSite } from '../support/stores.js';

forEachStore((kind, openStore) => {
  const SECOND = 1000;
  const SETTINGS: LoginThrottleSettings = { ...DEFAULT_LOGIN_THROTTLE, softLockAfter: 12, softLockMs: 3_600_000, forgetAfterMs: 3_600_000 };
  const ALICE = 'alice';
  const HOME = '192.0.2.1';
  const ATTACKER = '198.51.100.7';
  const ELSEWHERE = '203.0.113.9';

  interface Rig {
    throttle: LoginThrottle;
    store: Store;
    /** Store transactions begun through the throttle. */
    writes: number;
    now: number;
    /** Secret checks the throttle let through. */
    checks: number;
    /** One attempt: `right` decides what the secret check answers; resolves to 'ok', or the refusal's reason. */
    attempt(id: string, address: string, right: boolean): Promise<string>;
  }

  /** A throttle over a store opened by `open` (default: a fresh one of the suite's kind). */
  async function rig(settings: LoginThrottleSettings = SETTINGS, open: () => Promise<Store> = openStore): Promise<Rig> {
    const store = await open();
    const r = { store, writes: 0, now: 1_700_000_000_000, checks: 0 } as Rig;
    const counted: Pick<Store, 'reader' | 'write'> = { reader: store.reader, write: (work) => (r.writes++, store.write(work)) };
    r.throttle = new LoginThrottle(counted, settings, () => r.now);
    r.attempt = (id, address, right) =>
      r.throttle
        .attempt(id, address, async () => {
          r.checks++;
          if (!right) throw new AuthFailed(id === ALICE ? 'wrong_secret' : 'unknown');
          return 'ok';
        })
        .catch((err: unknown) => {
          if (err instanceof AuthFailed) return err.reason;
          throw err;
        });
    return r;
  }

  async function withEntity(r: Rig, id: string): Promise<void> {
    await r.store.write((tx) => tx.insertEntity(parseEntity({ id })));
  }

  describe('login throttle: delays', () => {
    let r: Rig;
    beforeEach(async () => {
      r = await rig();
      await withEntity(r, ALICE);
    });
    afterEach(() => r.store.close());

    it("follows Kanidm's steps: 1 base delay for 1–2 failures, 3 for 3–8, 5 for 9–24, 10 from 25 on", () => {
      const steps = Array.from({ length: 30 }, (_, i) => delayAfter(i + 1, SECOND) / SECOND);
      assert.deepEqual(steps, [1, 1, 3, 3, 3, 3, 3, 3, ...Array(16).fill(5), 10, 10, 10, 10, 10, 10]);
      assert.equal(delayAfter(0, SECOND), 0);
      assert.equal(delayAfter(1_000_000, SECOND), MAX_DELAY_STEPS * SECOND);
    });

    it('refuses attempts during the delay without checking the secret or counting them, and grows the delay', async () => {
      const expected = [1, 1, 3, 3, 3, 3, 3, 3, 5];
      for (const [i, seconds] of expected.entries()) {
        assert.equal(await r.attempt(ALICE, ATTACKER, false), 'wrong_secret', `failure ${i + 1}`);
        const checks = r.checks;
        r.now += seconds * SECOND - 1;
        // The right secret too: nothing is checked until the delay has passed, and nothing is counted.
        for (let poll = 0; poll < 3; poll++) assert.equal(await r.attempt(ALICE, ATTACKER, true), 'throttled');
        assert.equal(r.checks, checks, 'a refused attempt runs no secret check');
        r.now += 1;
      }
      const rows = await r.store.reader.throttleRecords([`pair ${ATTACKER} ${ALICE}`]);
      assert.equal(rows[0]!.failures, expected.length, 'only the failures counted, none of the refused attempts');
      assert.equal(await r.attempt(ALICE, ATTACKER, true), 'ok', 'after the delay the right secret works');
    });

    it('soft-locks an address and an (id, address) pair after softLockAfter failures, for softLockMs', async () => {
      for (let i = 0; i < SETTINGS.softLockAfter; i++) {
        assert.equal(await r.attempt(`guess${i}`, ATTACKER, false), 'unknown');
        r.now += MAX_DELAY_STEPS * SECOND;
      }
      // Each guess was a new id, so only the address key counted them all.
      assert.equal(await r.attempt('fresh-id', ATTACKER, true), 'throttled');
      r.now += SETTINGS.softLockMs - MAX_DELAY_STEPS * SECOND - 1;
      assert.equal(await r.attempt('fresh-id', ATTACKER, true), 'throttled');
      r.now += 1;
      assert.equal(await r.attempt(ALICE, ATTACKER, true), 'ok', 'the soft lock ends');
      assert.equal(await r.attempt(ALICE, ELSEWHERE, true), 'ok', 'another address was never affected');
    });

    it('caps the per-id delay at MAX_DELAY_STEPS base delays and never soft-locks an id', async () => {
      // A third party spreads its guesses over addresses: only the id key sees them all.
      for (let i = 0; i < 3 * SETTINGS.softLockAfter; i++) {
        assert.equal(await r.attempt(ALICE, `10.0.${i >> 8}.${i & 255}`, false), 'wrong_secret', `guess ${i}`);
        r.now += MAX_DELAY_STEPS * SECOND;
      }
      const [id] = await r.store.reader.throttleRecords([`id ${ALICE}`]);
      assert.equal(id!.blockedUntil - id!.lastFailure, MAX_DELAY_STEPS * SECOND);
      assert.equal(
        await r.attempt(ALICE, ELSEWHERE, true),
        'ok',
        'the owner at an unfamiliar address waits at most the per-id maximum after the last failure',
      );
    });

    it('forgets an address whose last failure is older than forgetAfter', async () => {
      for (let i = 0; i < 3; i++) {
        await r.attempt(`guess${i}`, ATTACKER, false);
        r.now += 3 * SECOND;
      }
      r.now += SETTINGS.forgetAfterMs;
      assert.equal(await r.attempt('guess9', ATTACKER, false), 'unknown');
      const [address] = await r.store.reader.throttleRecords([`address ${ATTACKER}`]);
      assert.equal(address!.failures, 1, 'the count started again');
      assert.equal(address!.blockedUntil - address!.lastFailure, SECOND);
    });
  });

  describe('login throttle: the owner and a third party', () => {
    let r: Rig;
    beforeEach(async () => {
      r = await rig();
      await withEntity(r, ALICE);
    });
    afterEach(() => r.store.close());

    it("lets the owner in from a familiar address at once while a third party's guesses delay everyone else", async () => {
      assert.equal(await r.attempt(ALICE, HOME, true), 'ok');
      for (let i = 0; i < 30; i++) {
        assert.equal(await r.attempt(ALICE, `10.1.0.${i}`, false), 'wrong_secret');
        assert.equal(await r.attempt(ALICE, ELSEWHERE, true), 'throttled', `an unfamiliar address, after guess ${i + 1}`);
        // (The owner's success clears the id's count, so the next guess passes the id key again.)
        assert.equal(await r.attempt(ALICE, HOME, true), 'ok', `the owner at home, after guess ${i + 1}`);
      }
    });

    it('counts a familiar address as such for familiarFor only', async () => {
      assert.equal(await r.attempt(ALICE, HOME, true), 'ok');
      r.now += SETTINGS.familiarForMs;
      assert.equal(await r.attempt(ALICE, ATTACKER, false), 'wrong_secret');
      assert.equal(await r.attempt(ALICE, HOME, true), 'throttled');
    });

    it('clears the pair and the id on success, keeps the address count', async () => {
      await r.attempt(ALICE, HOME, false);
      r.now += SECOND;
      assert.equal(await r.attempt(ALICE, HOME, true), 'ok');
      const keys = [`address ${HOME}`, `pair ${HOME} ${ALICE}`, `id ${ALICE}`];
      assert.deepEqual(
        (await r.store.reader.throttleRecords(keys)).map((k) => [k.key, k.failures]),
        [[`address ${HOME}`, 1]],
      );
      assert.equal(await r.attempt(ALICE, HOME, false), 'wrong_secret');
      assert.equal((await r.store.reader.throttleRecords([`pair ${HOME} ${ALICE}`]))[0]!.failures, 1, 'the pair starts again from one');
    });

    it('runs attempts on one id one at a time: a parallel burst gets one guess', async () => {
      const burst = await Promise.all(Array.from({ length: 10 }, (_, i) => r.attempt(ALICE, `10.2.0.${i}`, false)));
      assert.deepEqual(burst, ['wrong_secret', ...Array(9).fill('throttled')]);
      assert.equal(r.checks, 1);
    });

    it(`refuses more than ${MAX_WAITING_PER_ID} attempts waiting on one id`, async () => {
      let release!: () => void;
      let started!: () => void;
      const checking = new Promise<void>((resolve) => (started = resolve));
      const held = r.throttle.attempt(ALICE, HOME, () => {
        started();
        return new Promise<string>((resolve) => (release = () => resolve('ok')));
      });
      await checking;
      const waiting = Array.from({ length: MAX_WAITING_PER_ID - 1 }, () => r.attempt(ALICE, HOME, true));
      assert.equal(await r.attempt(ALICE, HOME, true), 'throttled');
      release();
      assert.equal(await held, 'ok');
      assert.deepEqual(await Promise.all(waiting), Array(MAX_WAITING_PER_ID - 1).fill('ok'));
    });
  });

  describe('login throttle: the store', () => {
    it('writes on failures and on a success that changes something, not on every success', async () => {
      const r = await rig();
      try {
        await withEntity(r, ALICE);
        const writes = () => r.writes;
        await r.attempt(ALICE, HOME, true);
        assert.equal(writes(), 1, 'the first login from an address remembers it');
        await r.attempt(ALICE, HOME, true);
        r.now += 23 * 3_600_000;
        await r.attempt(ALICE, HOME, true);
        assert.equal(writes(), 1, 'nothing changed: nothing written');
        r.now += 3_600_000;
        await r.attempt(ALICE, HOME, true);
        assert.equal(writes(), 2, 'a day later the address time is refreshed');
        await r.attempt(ALICE, HOME, false);
        assert.equal(writes(), 3, 'a failure is written');
        await r.attempt(ALICE, HOME, true);
        assert.equal(writes(), 3, 'refused during the delay: nothing written');
        r.now += SECOND;
        await r.attempt(ALICE, HOME, true);
        assert.equal(writes(), 4, 'the success clears the pair and the id');
        await r.attempt(ALICE, HOME, true);
        assert.equal(writes(), 4);
        await r.throttle
          .attempt(ALICE, HOME, () => Promise.reject(new KeyholdError('KH_ERR_PLUGIN_FAILED', 'crashed')))
          .catch(() => undefined);
        assert.equal(writes(), 4, 'an outage is not a failure of the client');
      } finally {
        await r.store.close();
      }
    });

    it('keeps its state across a reopen of the store', async () => {
      const site = await newStoreSite(kind);
      const first = await rig(SETTINGS, () => site.open());
      await withEntity(first, ALICE);
      await first.attempt(ALICE, ATTACKER, false);
      await first.store.close();
      const second = await rig(SETTINGS, () => site.open());
      second.now = first.now;
      try {
        assert.equal(await second.attempt(ALICE, ATTACKER, true), 'throttled');
      } finally {
        await second.store.close();
        site.remove();
      }
    });

    it('prunes expired rows and addresses no longer familiar', async () => {
      const r = await rig();
      try {
        await withEntity(r, ALICE);
        await r.attempt(ALICE, HOME, true);
        await r.attempt('ghost', ATTACKER, false);
        r.now += SETTINGS.familiarForMs + 1;
        await r.attempt('ghost2', ELSEWHERE, false);
        assert.deepEqual(await r.store.reader.throttleRecords([`address ${ATTACKER}`, `id ghost`, `pair ${ATTACKER} ghost`]), []);
        assert.equal(await r.store.reader.lastLoginFrom(ALICE, HOME), undefined);
        assert.equal((await r.store.reader.throttleRecords([`address ${ELSEWHERE}`])).length, 1, 'the fresh failure stays');
      } finally {
        await r.store.close();
      }
    });

    it('does nothing at all when disabled', async () => {
      const r = await rig({ ...SETTINGS, enabled: false });
      try {
        for (let i = 0; i < 5; i++) assert.equal(await r.attempt(ALICE, ATTACKER, false), 'wrong_secret');
        assert.equal(r.checks, 5);
        assert.equal(r.writes, 0);
      } finally {
        await r.store.close();
      }
    });
  });
});
