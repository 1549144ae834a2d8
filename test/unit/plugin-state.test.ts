// Plugin state rules (the SDK's StateService) over every place entries are kept: the test
// harness's memory and the server's store, SQLite and PostgreSQL. The same cases run against all,
// so that a plugin tested with the harness meets the same semantics, limits and words in the
// server. Two stores opened on one database play two servers sharing one plugin's state.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  MemoryStateBackend,
  PluginState,
  StateError,
  StateErrorCodes,
  StateService,
  STATE_LIMITS,
  type StateBackend,
} from 'keyhold-plugin-sdk';
import { pluginNamespace } from '../../src/store/plugin-state.js';
import type { Store } from '../../src/store/store.js';
import { forEachStore, newStoreSite } from '../support/stores.js';

interface Place {
  /** The service of `plugin`'s namespace, on a clock the test moves. */
  service(plugin: string): StateService;
  clock: { now: number };
}

const stores: Store[] = [];
after(() => Promise.all(stores.map((s) => s.close())));

/** Keeps `store` to be closed when the file's tests are done. */
function kept(store: Store): Store {
  stores.push(store);
  return store;
}

function memoryPlace(): Place {
  const clock = { now: Date.UTC(2026, 0, 1) };
  const namespaces = new Map<string, StateBackend>();
  return {
    clock,
    service: (plugin) => {
      if (!namespaces.has(plugin)) namespaces.set(plugin, new MemoryStateBackend());
      return new StateService(namespaces.get(plugin)!, () => clock.now);
    },
  };
}

function storePlace(store: Store): Place {
  const clock = { now: Date.UTC(2026, 0, 1) };
  return { clock, service: (plugin) => new StateService(pluginNamespace(store.pluginState, plugin), () => clock.now) };
}

/** Matches a StateError with `code` whose message matches `message`. */
const stateError = (code: number, message: RegExp) => (err: unknown) =>
  err instanceof StateError && err.code === code && message.test(err.message);
const invalid = (message: RegExp) => stateError(StateErrorCodes.InvalidParams, message);

/** The cases every place must pass; `make` gives a fresh, empty one. */
function stateCases(make: () => Promise<Place>): void {
  {
    it('set, get, delete: entries carry a version that grows with each write', async () => {
      const { service } = await make();
      const s = service('p');
      assert.equal(await s.handle('state/get', { key: 'k' }), null);
      assert.deepEqual(await s.handle('state/set', { key: 'k', value: 'one' }), { key: 'k', value: 'one', version: 1, expiresAt: null });
      assert.deepEqual(await s.handle('state/set', { key: 'k', value: 'two' }), { key: 'k', value: 'two', version: 2, expiresAt: null });
      assert.deepEqual(await s.handle('state/get', { key: 'k' }), { key: 'k', value: 'two', version: 2, expiresAt: null });
      assert.deepEqual(await s.handle('state/delete', { key: 'k' }), { deleted: true });
      assert.deepEqual(await s.handle('state/delete', { key: 'k' }), { deleted: false });
      assert.equal(await s.handle('state/get', { key: 'k' }), null);
    });

    it('each plugin sees only its own namespace', async () => {
      const { service } = await make();
      await service('a').handle('state/set', { key: 'secret', value: 'of a' });
      assert.equal(await service('b').handle('state/get', { key: 'secret' }), null);
      assert.deepEqual(await service('b').handle('state/list', {}), { entries: [], more: false });
      await service('b').handle('state/incr', { key: 'secret' });
      assert.equal(((await service('a').handle('state/get', { key: 'secret' })) as { value: string }).value, 'of a');
      // No request can name another namespace: the host picks it from the connection.
      await assert.rejects(service('b').handle('state/get', { key: 'secret', namespace: 'a' }), invalid(/unknown field "namespace"/));
    });

    it('list: by prefix, in key order, bounded, paged with after', async () => {
      const { service } = await make();
      const s = service('p');
      for (const key of ['user:c', 'user:a', 'other', 'user:b']) await s.handle('state/set', { key, value: key });
      const page = (await s.handle('state/list', { prefix: 'user:', limit: 2 })) as { entries: { key: string }[]; more: boolean };
      assert.deepEqual([page.entries.map((e) => e.key), page.more], [['user:a', 'user:b'], true]);
      const rest = (await s.handle('state/list', { prefix: 'user:', after: 'user:b', limit: 2 })) as {
        entries: { key: string }[];
        more: boolean;
      };
      assert.deepEqual([rest.entries.map((e) => e.key), rest.more], [['user:c'], false]);
      const all = (await s.handle('state/list', {})) as { entries: { key: string }[] };
      assert.deepEqual(
        all.entries.map((e) => e.key),
        ['other', 'user:a', 'user:b', 'user:c'],
      );
      // A prefix is matched exactly, not as a pattern.
      assert.deepEqual(((await s.handle('state/list', { prefix: 'USER:' })) as { entries: unknown[] }).entries, []);
      assert.deepEqual(((await s.handle('state/list', { prefix: 'user_' })) as { entries: unknown[] }).entries, []);
    });

    it('TTL: an expired entry is invisible to get, list, incr and compareAndSet', async () => {
      const { service, clock } = await make();
      const s = service('p');
      const set = (await s.handle('state/set', { key: 'k', value: 'v', ttlMs: 1000 })) as { expiresAt: number };
      assert.equal(set.expiresAt, clock.now + 1000);
      clock.now += 999;
      assert.equal(((await s.handle('state/get', { key: 'k' })) as { value: string }).value, 'v');
      clock.now += 1;
      assert.equal(await s.handle('state/get', { key: 'k' }), null);
      assert.deepEqual(((await s.handle('state/list', {})) as { entries: unknown[] }).entries, []);
      assert.deepEqual(await s.handle('state/delete', { key: 'k' }), { deleted: false });
      await s.handle('state/set', { key: 'k', value: 'v', ttlMs: 10 });
      clock.now += 10;
      assert.equal(
        ((await s.handle('state/compareAndSet', { key: 'k', expected: null, value: 'new' })) as { swapped: boolean }).swapped,
        true,
      );
      await s.handle('state/set', { key: 'n', value: '41', ttlMs: 10 });
      clock.now += 10;
      assert.equal(((await s.handle('state/incr', { key: 'n' })) as { value: string; version: number }).value, '1', 'counted from 0 again');
    });

    it('TTL: incr gives a new count ttlMs and keeps an existing one’s expiry; set without ttlMs never expires', async () => {
      const { service, clock } = await make();
      const s = service('p');
      const start = clock.now;
      await s.handle('state/incr', { key: 'c', ttlMs: 1000 });
      clock.now += 600;
      const second = (await s.handle('state/incr', { key: 'c', ttlMs: 1000 })) as { value: string; expiresAt: number; version: number };
      assert.deepEqual(
        [second.value, second.expiresAt, second.version],
        ['2', start + 1000, 2],
        'the window runs from the first increment',
      );
      clock.now += 400;
      assert.equal(await s.handle('state/get', { key: 'c' }), null);
      await s.handle('state/set', { key: 'c', value: '5', ttlMs: 100 });
      await s.handle('state/set', { key: 'c', value: '5' });
      clock.now += 10_000;
      assert.equal(((await s.handle('state/get', { key: 'c' })) as { expiresAt: null }).expiresAt, null);
      assert.equal(((await s.handle('state/incr', { key: 'c', by: -7 })) as { value: string }).value, '-2');
    });

    it('compareAndSet: writes only over the expected value (null: only when absent)', async () => {
      const { service, clock } = await make();
      const s = service('p');
      const cas = (expected: string | null, value: string, ttlMs?: number) =>
        s.handle('state/compareAndSet', { key: 'k', expected, value, ...(ttlMs && { ttlMs }) }) as Promise<{
          swapped: boolean;
          entry: { value: string; version: number; expiresAt: number | null } | null;
        }>;
      assert.deepEqual(await cas('x', 'a'), { swapped: false, entry: null });
      assert.deepEqual(await cas(null, 'a', 50), { swapped: true, entry: { key: 'k', value: 'a', version: 1, expiresAt: clock.now + 50 } });
      assert.deepEqual((await cas(null, 'b')).swapped, false);
      const refused = await cas('b', 'c');
      assert.deepEqual([refused.swapped, refused.entry?.value], [false, 'a'], 'the live entry comes back');
      assert.deepEqual(await cas('a', 'c'), { swapped: true, entry: { key: 'k', value: 'c', version: 2, expiresAt: null } });
      assert.equal(((await s.handle('state/get', { key: 'k' })) as { value: string }).value, 'c');
    });

    it('refuses what breaks a limit, clearly, and writes nothing', async () => {
      const { service } = await make();
      const s = service('p');
      const cases: [string, object | null, RegExp][] = [
        ['state/set', { key: '', value: 'v' }, /key: must not be empty/],
        ['state/set', { key: 'k'.repeat(513), value: 'v' }, /key: 513 bytes, over the limit of 512/],
        ['state/set', { key: 'é'.repeat(257), value: 'v' }, /key: 514 bytes, over the limit of 512/],
        ['state/set', { key: 'k', value: 'v'.repeat(65537) }, /value: 65537 bytes, over the limit of 65536/],
        ['state/set', { key: 'k', value: 7 }, /value: expected a string, got number/],
        ['state/set', { key: 'k', value: 'v', ttlMs: 0 }, /ttlMs: expected an integer from 1 to 31622400000, got 0/],
        ['state/set', { key: 'k', value: 'v', ttlMs: 1.5 }, /ttlMs: expected an integer/],
        ['state/incr', { key: 'k', by: 0.5 }, /by: expected an integer/],
        ['state/list', { limit: 1001 }, /limit: expected an integer from 1 to 1000, got 1001/],
        ['state/get', null, /state\/get: params must be an object/],
        ['state/drop', { key: 'k' }, /unknown state method state\/drop/],
      ];
      for (const [method, params, message] of cases) await assert.rejects(s.handle(method, params), invalid(message), method);
      assert.deepEqual(((await s.handle('state/list', {})) as { entries: unknown[] }).entries, []);
      await s.handle('state/set', { key: 'text', value: 'abc' });
      await assert.rejects(s.handle('state/incr', { key: 'text' }), invalid(/the value of "text" is not an integer \("abc"\)/));
      await s.handle('state/set', { key: 'big', value: String(Number.MAX_SAFE_INTEGER) });
      await assert.rejects(s.handle('state/incr', { key: 'big' }), invalid(/would leave the safe integer range/));
      assert.equal(((await s.handle('state/get', { key: 'big' })) as { version: number }).version, 1, 'nothing was written');
    });

    it('refuses a new key beyond the most live keys a plugin may hold, counting only live ones', async () => {
      const { service, clock } = await make();
      const s = service('p');
      const limit = STATE_LIMITS.maxKeys;
      STATE_LIMITS.maxKeys = 3;
      try {
        await s.handle('state/set', { key: 'a', value: '' });
        await s.handle('state/set', { key: 'b', value: '' });
        await s.handle('state/set', { key: 'c', value: '', ttlMs: 5 });
        await assert.rejects(
          s.handle('state/incr', { key: 'd' }),
          stateError(StateErrorCodes.LimitReached, /holds 3 live keys, the most it may \(3\); delete some or give them a ttlMs/),
        );
        await s.handle('state/set', { key: 'a', value: 'an existing key may still be written' });
        clock.now += 5;
        await s.handle('state/set', { key: 'd', value: 'room again once c expired' });
        assert.equal(((await service('q').handle('state/set', { key: 'x', value: '' })) as { version: number }).version, 1, 'per plugin');
      } finally {
        STATE_LIMITS.maxKeys = limit;
      }
    });

    it('50 increments in parallel give exactly 50', async () => {
      const { service } = await make();
      const s = service('p');
      await Promise.all(Array.from({ length: 50 }, () => s.handle('state/incr', { key: 'n' })));
      assert.equal(((await s.handle('state/get', { key: 'n' })) as { value: string }).value, '50');
    });

    it('refuses requests beyond the most a plugin may have in flight, and serves the others', async () => {
      const { service } = await make();
      const s = service('p');
      const max = STATE_LIMITS.maxCallsInFlight;
      const outcomes = await Promise.allSettled(Array.from({ length: max + 10 }, () => s.handle('state/incr', { key: 'n' })));
      const refused = outcomes.filter((o) => o.status === 'rejected');
      assert.equal(refused.length, 10);
      for (const r of refused)
        assert.ok(
          stateError(
            StateErrorCodes.LimitReached,
            new RegExp(`${max} state requests are already waiting for an answer`),
          )((r as PromiseRejectedResult).reason),
        );
      assert.equal(((await s.handle('state/get', { key: 'n' })) as { value: string }).value, String(max));
    });
  }
}

describe('plugin state in the harness (memory)', () => stateCases(async () => memoryPlace()));

forEachStore((kind, openStore) => {
  describe('plugin state in the server store', () => {
    stateCases(async () => storePlace(kept(await openStore())));

    it('prune deletes the expired rows only, of every plugin', async () => {
      const store = kept(await openStore());
      const now = Date.UTC(2026, 0, 1);
      const a = new StateService(pluginNamespace(store.pluginState, 'a'), () => now);
      const b = new StateService(pluginNamespace(store.pluginState, 'b'), () => now);
      await a.handle('state/set', { key: 'short', value: '', ttlMs: 10 });
      await a.handle('state/set', { key: 'forever', value: '' });
      await b.handle('state/incr', { key: 'short', ttlMs: 10 });
      await b.handle('state/set', { key: 'long', value: '', ttlMs: 1000 });
      assert.equal(await store.pluginState.prune(now + 9), 0);
      assert.equal(await store.pluginState.prune(now + 10), 2);
      assert.deepEqual(
        (await store.pluginState.list('a', '', '', 10, now)).map((e) => e.key),
        ['forever'],
      );
      assert.deepEqual(
        (await store.pluginState.list('b', '', '', 10, now)).map((e) => e.key),
        ['long'],
      );
    });

    it('two servers on one database share a namespace: 50 increments in parallel through both give exactly 50, a delete through one is seen by the other', async () => {
      const site = await newStoreSite(kind);
      const [storeA, storeB] = [await site.open(), await site.open()];
      try {
        const [a, b] = [storePlace(storeA), storePlace(storeB)];
        const [onA, onB] = [a.service('fail2lock'), b.service('fail2lock')];
        await Promise.all(Array.from({ length: 50 }, (_v, i) => (i % 2 ? onA : onB).handle('state/incr', { key: 'n', ttlMs: 60_000 })));
        assert.equal(((await onB.handle('state/get', { key: 'n' })) as { value: string; version: number }).value, '50');
        assert.equal(((await onA.handle('state/get', { key: 'n' })) as { version: number }).version, 50);
        assert.deepEqual(await onB.handle('state/delete', { key: 'n' }), { deleted: true });
        assert.equal(await onA.handle('state/get', { key: 'n' }), null);
      } finally {
        await Promise.all([storeA.close(), storeB.close()]);
        site.remove();
      }
    });
  });
});

describe("a plugin's state where the host offered none", () => {
  it('rejects every call with a StateError saying why, not silently', async () => {
    const state = new PluginState(); // a plugin under `plugin verify`, an older host, or not served
    await assert.rejects(
      state.incr('k'),
      stateError(StateErrorCodes.Unavailable, /state\/incr: no plugin state here: the host did not offer it at initialize/),
    );
  });
});
