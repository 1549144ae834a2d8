// Two real keyhold server processes on one PostgreSQL database, as behind a load balancer: a write
// through one is read through the other at once; concurrent updates of one entity through both
// lose no update (each client retries on KH_ERR_CONFLICT); and a server killed with SIGKILL under
// a write load loses no acknowledged write while the other keeps serving. What the servers share
// through the database: the token signing keys (B verifies A's tokens with nothing copied between
// their data directories, and a rotation through A reaches B), token revocation, plugin state
// (fail2lock counts failures made on either server), and the committed-event delivery lease (when
// its holder dies, the other server delivers every committed event).
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import { committedHookName } from 'keyhold-plugin-sdk';
import YAML from 'yaml';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { fixture } from '../fixtures/plugin-host.js';
import {
  call,
  expectCode,
  killChildren,
  login,
  runCli,
  scratchDir,
  serverEnv,
  startServerProcess,
  type ServerProcess,
} from '../support/keyhold.js';
import { repoPath } from '../support/plugin-projects.js';
import { eventually, recordedAttempts } from '../support/recorder-log.js';
import { freshDatabaseUrl, postgresSkip } from '../support/stores.js';

/** How often a client retries an update refused with KH_ERR_CONFLICT before the test gives up. */
const MAX_RETRIES = 100;
/** fail2lock's limit on both servers: failures counted before it refuses. */
const ALLOWED_FAILS = 3;

/** A plugin directory holding `plugins` (name → file), and a settings file configuring them. */
function pluginSetup(dir: string, plugins: Record<string, { file: string; config: Record<string, unknown> }>): NodeJS.ProcessEnv {
  const pluginDir = join(dir, 'plugins');
  mkdirSync(pluginDir, { recursive: true });
  for (const [name, { file }] of Object.entries(plugins)) symlinkSync(file, join(pluginDir, name));
  const configFile = join(dir, 'keyhold.yaml');
  const configs = Object.fromEntries(Object.entries(plugins).map(([name, { config }]) => [name, { config }]));
  writeFileSync(configFile, YAML.stringify({ plugins: { pingInterval: 0, plugins: configs } }));
  return { KEYHOLD_PLUGIN_DIR: pluginDir, KEYHOLD_CONFIG: configFile };
}

/** The kid a token's header names. */
const kidOf = (token: string): string | undefined => decodeProtectedHeader(token).kid;

describe('two keyhold servers on one PostgreSQL', { skip: postgresSkip() }, () => {
  let a: ServerProcess;
  let b: ServerProcess;
  let token: string;

  before(async () => {
    const databaseUrl = await freshDatabaseUrl();
    const dataA = join(scratchDir('pg-server-a'), 'data');
    const dataB = join(scratchDir('pg-server-b'), 'data');
    // Both servers load fail2lock, with the same settings, as an operator deploys them.
    const plugins = pluginSetup(scratchDir('pg-plugins'), {
      fail2lock: { file: repoPath('examples/fail2lock/dist/fail2lock.js'), config: { allowedFails: ALLOWED_FAILS, interval: '1h' } },
    });
    a = await startServerProcess(
      serverEnv(dataA, { ...plugins, KEYHOLD_DATABASE_URL: databaseUrl, KEYHOLD_BOOTSTRAP: 'root:root-secret' }),
    );
    b = await startServerProcess(serverEnv(dataB, { ...plugins, KEYHOLD_DATABASE_URL: databaseUrl }));
    token = await login(a.url, 'root', 'root-secret');
  });
  after(() => killChildren());

  it('reads through B at once what was written through A, and the other way round', async () => {
    const created = await call(a.url, 'POST', '/v1/entities', { token, body: { id: 'alice', meta: { displayName: 'Alice' } } });
    assert.ok(created.status < 300, created.text);
    const seen = await call(b.url, 'GET', '/v1/entities/alice', { token });
    assert.equal(seen.status, 200, seen.text);
    assert.equal(seen.body.meta.displayName, 'Alice');
    const group = await call(b.url, 'POST', '/v1/groups', { token, body: { name: 'staff' } });
    assert.ok(group.status < 300, group.text);
    assert.equal((await call(a.url, 'GET', '/v1/groups/staff', { token })).status, 200);
  });

  it('loses no update when both servers update one entity at the same time', async () => {
    assert.ok((await call(a.url, 'POST', '/v1/entities', { token, body: { id: 'shared' } })).status < 300);
    let conflicts = 0;
    /** Sets `key` through `server`, again after each KH_ERR_CONFLICT. */
    const setKey = async (server: ServerProcess, key: string) => {
      for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
        const r = await call(server.url, 'POST', '/v1/entities/shared/untyped-meta', {
          token,
          body: { action: 'upsert', key, value: 'set' },
        });
        if (r.status === 200) return;
        assert.equal(r.body?.code, 'KH_ERR_CONFLICT', r.text);
        conflicts++;
      }
      assert.fail(`${key}: still conflicting after ${MAX_RETRIES} attempts`);
    };
    const client = async (server: ServerProcess, prefix: string) => {
      for (let i = 0; i < 15; i++) await setKey(server, `${prefix}${i}`);
    };
    await Promise.all([client(a, 'a'), client(a, 'x'), client(b, 'b'), client(b, 'y')]);
    const final = await call(b.url, 'GET', '/v1/entities/shared', { token });
    const keys = (final.body.meta.untypedMeta as string[]).map((kv) => kv.split(':')[0]).sort();
    const expected = ['a', 'x', 'b', 'y'].flatMap((p) => Array.from({ length: 15 }, (_v, i) => `${p}${i}`)).sort();
    assert.deepEqual(keys, expected, `every update is there (${conflicts} conflicts were retried)`);
  });

  it('a token A issued is accepted by B; revoked through B (a logout, a secret change), A refuses it at once', async () => {
    const created = await call(a.url, 'POST', '/v1/entities', { token, body: { id: 'carol', secret: 'Carol-Secret-2026-a' } });
    assert.equal(created.status, 201, created.text);
    const whoami = async (server: ServerProcess, bearer: string) =>
      (await call(server.url, 'GET', '/v1/auth/whoami', { token: bearer })).status;

    const first = await login(a.url, 'carol', 'Carol-Secret-2026-a');
    assert.equal(await whoami(b, first), 200, 'B accepts a token A signed');
    assert.equal((await call(b.url, 'POST', '/v1/auth/logout', { token: first })).status, 204);
    assert.equal(await whoami(a, first), 401, 'A refuses the token logged out through B');
    assert.equal(await whoami(b, first), 401);

    const second = await login(a.url, 'carol', 'Carol-Secret-2026-a');
    assert.equal(await whoami(b, second), 200);
    const changed = await call(b.url, 'PUT', '/v1/entities/carol/secret', { token, body: { secret: 'Carol-Secret-2026-b' } });
    assert.equal(changed.status, 204, changed.text);
    assert.equal(await whoami(a, second), 401, 'A refuses the token of the secret changed through B');
    assert.equal((await login(a.url, 'carol', 'Carol-Secret-2026-b')).length > 0, true, 'the new secret works through A');
  });

  it('keyhold keys rotate through A: B signs with the new key and still accepts the tokens of the old one', async () => {
    const older = await login(a.url, 'root', 'root-secret');
    const rotated = JSON.parse(
      expectCode(await runCli(['--json', 'keys', 'rotate'], { KEYHOLD_SERVER: a.url, KEYHOLD_TOKEN: token }), 0, 'keys rotate').stdout,
    ) as { current: { kid: string } };
    assert.notEqual(kidOf(older), rotated.current.kid);
    // B reads the keys again when it next checks the store (at most a second later).
    let fromB = '';
    await eventually(
      'B signs with the key rotated through A',
      async () => kidOf((fromB = await login(b.url, 'root', 'root-secret'))) === rotated.current.kid,
    );
    assert.equal(kidOf(await login(a.url, 'root', 'root-secret')), rotated.current.kid);
    for (const server of [a, b]) {
      assert.equal((await call(server.url, 'GET', '/v1/auth/whoami', { token: older })).status, 200, 'the older token is still accepted');
      assert.equal((await call(server.url, 'GET', '/v1/auth/whoami', { token: fromB })).status, 200);
    }
    const listed = await call(b.url, 'GET', '/v1/keys', { token });
    assert.deepEqual(
      listed.body.keys.map((k: { kid: string; state: string }) => [k.kid, k.state]),
      [
        [rotated.current.kid, 'current'],
        [kidOf(older), 'retired'],
      ],
    );
  });

  it('fail2lock on both servers counts the failures made through either: locked on both, unlocked through B for A', async () => {
    assert.equal((await call(a.url, 'POST', '/v1/entities', { token, body: { id: 'dave', secret: 'Dave-Secret-2026-a' } })).status, 201);
    const authCheck = async (server: ServerProcess, secret: string) =>
      (await call(server.url, 'POST', '/v1/auth/check', { body: { id: 'dave', secret } })).status;
    assert.equal(await authCheck(a, 'wrong-1'), 401);
    assert.equal(await authCheck(a, 'wrong-2'), 401);
    assert.equal(await authCheck(b, 'Dave-Secret-2026-a'), 200, 'two failures: not locked yet (and a success clears the count)');
    assert.equal(await authCheck(a, 'wrong-1'), 401);
    assert.equal(await authCheck(a, 'wrong-2'), 401);
    assert.equal(await authCheck(b, 'wrong-3'), 401);
    assert.equal(await authCheck(b, 'Dave-Secret-2026-a'), 401, 'locked on B');
    assert.equal(await authCheck(a, 'Dave-Secret-2026-a'), 401, 'locked on A');
    const counted = await call(a.url, 'GET', '/v1/plugins/fail2lock/state/dave', { token });
    assert.equal(counted.body.value, String(ALLOWED_FAILS + 2), 'each server counted into the one shared entry');
    expectCode(
      await runCli(['plugin', 'state', 'fail2lock', 'delete', 'dave'], { KEYHOLD_SERVER: b.url, KEYHOLD_TOKEN: token }),
      0,
      'plugin state delete through B',
    );
    assert.equal(await authCheck(a, 'Dave-Secret-2026-a'), 200, 'unlocked on A');
  });

  it('loses no acknowledged write when A is killed under load, and B keeps serving', async () => {
    const acknowledged: string[] = [];
    let next = 0;
    let killed = false;
    const KILL_AFTER = 20;
    const LIMIT = 500;
    /** One client writing through A until A is gone (or LIMIT writes were made: the kill comes long before). */
    const writer = async () => {
      while (!killed && next < LIMIT) {
        const id = `load-${next++}`;
        try {
          const r = await call(a.url, 'POST', '/v1/entities', { token, body: { id } });
          if (r.status < 300) acknowledged.push(id);
        } catch {
          // A died while this request was in flight: not acknowledged, so it may or may not be written.
        }
        if (!killed && acknowledged.length >= KILL_AFTER) {
          killed = true;
          a.child.kill('SIGKILL');
        }
      }
    };
    await Promise.all([writer(), writer(), writer(), writer()]);
    assert.ok(killed, 'A was killed under load');
    assert.ok(acknowledged.length >= KILL_AFTER);
    for (const id of acknowledged)
      assert.equal((await call(b.url, 'GET', `/v1/entities/${id}`, { token })).status, 200, `${id} was acknowledged`);
    const after = await call(b.url, 'POST', '/v1/entities', { token, body: { id: 'after-the-kill' } });
    assert.ok(after.status < 300, after.text);
    assert.equal((await call(b.url, 'GET', '/v1/entities/after-the-kill', { token })).status, 200);
    const health = await call(b.url, 'GET', '/healthz');
    assert.equal(health.status, 200, health.text);
  });
});

/**
 * Creates entity `id` with `number` through `server`; the request id of an acknowledged creation,
 * undefined when the server died with the request in flight. The number is given: automatic
 * numbers proposed by two servers at once can be the same, and the second commit then writes
 * another (lifecycle-concurrency.test.ts); given numbers keep this test about delivery simple.
 */
async function createEntity(server: ServerProcess, token: string, id: string, number: number): Promise<string | undefined> {
  let response: Response;
  let text: string;
  try {
    response = await fetch(`${server.url}/v1/entities`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id, number }),
    });
    text = await response.text();
  } catch {
    // The server died while the request was in flight: not acknowledged (it may or may not be committed).
    return undefined;
  }
  assert.equal(response.status, 201, text);
  return response.headers.get('x-request-id') ?? undefined;
}

describe('committed events on two servers when the delivery lease holder dies', { skip: postgresSkip() }, () => {
  after(() => killChildren());

  it('B takes the lease over once it expires and delivers every committed event; only what A delivered without writing its cursor comes again', async () => {
    const databaseUrl = await freshDatabaseUrl();
    const dir = scratchDir('pg-events');
    const file = join(dir, 'recorder.jsonl');
    const plugins = pluginSetup(dir, {
      recorder: { file: fixture('committed-recorder'), config: { file, hooks: ['committedEntityCreate'] } },
    });
    const env = (name: string, extra: NodeJS.ProcessEnv = {}) =>
      serverEnv(join(dir, name), {
        ...plugins,
        KEYHOLD_DATABASE_URL: databaseUrl,
        KEYHOLD_EVENTS_LEASE_TTL: '1s',
        KEYHOLD_EVENTS_LEASE_RENEW: '300ms',
        ...extra,
      });
    const a = await startServerProcess(env('data-a', { KEYHOLD_BOOTSTRAP: 'root:root-secret' }));
    const token = await login(a.url, 'root', 'root-secret');
    const recorderPid = async (server: ServerProcess) =>
      ((await call(server.url, 'GET', '/v1/plugins', { token })).body.plugins as { name: string; pid: number }[]).find(
        (p) => p.name === 'recorder',
      )!.pid;
    const pidA = await recorderPid(a);
    assert.ok(await createEntity(a, token, 'first', 100));
    await eventually('A, alone, holds the lease and delivers', () =>
      recordedAttempts(file).some((l) => l.subjectKey === 'first' && l.pid === pidA),
    );
    const b = await startServerProcess(env('data-b'));
    const pidB = await recorderPid(b);

    // Writes through both servers; A is killed with SIGKILL in the middle of its own.
    const acknowledged: string[] = [];
    let killed = false;
    const throughA = async () => {
      for (let i = 0; i < 200 && !killed; i++) {
        const requestId = await createEntity(a, token, `via-a-${i}`, 1000 + i);
        if (requestId) acknowledged.push(requestId);
        if (i === 10) {
          killed = true;
          a.child.kill('SIGKILL');
        }
      }
    };
    const throughB = async () => {
      for (let i = 0; i < 10; i++) acknowledged.push((await createEntity(b, token, `via-b-${i}`, 2000 + i))!);
      await eventually('A is dead', () => killed && (a.child.exitCode !== null || a.child.signalCode !== null));
      for (let i = 10; i < 20; i++) acknowledged.push((await createEntity(b, token, `via-b-${i}`, 2000 + i))!);
    };
    await Promise.all([throughA(), throughB()]);
    assert.ok(acknowledged.every(Boolean), 'every write through B was acknowledged');

    // Every committed creation, whichever server committed it (acknowledged or not), as the database has them.
    const store = await PostgresStore.open(databaseUrl);
    const committed = (await store.outbox.eventsAfter(0, 1000).finally(() => store.close()))
      .filter((e) => committedHookName(e.point) === 'committedEntityCreate')
      .map((e) => e.requestId);
    for (const requestId of acknowledged) assert.ok(committed.includes(requestId), `acknowledged ${requestId} is committed`);
    const delivered = () => recordedAttempts(file).filter((l) => l.outcome === 'delivered');
    await eventually(
      'B delivers every committed event',
      () => committed.every((id) => delivered().some((l) => l.requestId === id)),
      30_000,
    );

    const lines = delivered();
    for (const requestId of committed) {
      const by = lines.filter((l) => l.requestId === requestId).map((l) => l.pid);
      // At least once: A may have delivered an event and died before writing its cursor (written
      // every 250 ms), so B, resuming from the stored cursor, delivers it again: once more at most.
      assert.ok(by.length === 1 || (by.length === 2 && by[0] === pidA && by[1] === pidB), `${requestId}: delivered by ${by.join(', ')}`);
    }
    const firstOfB = lines.findIndex((l) => l.pid === pidB);
    assert.ok(firstOfB > 0, 'B delivered after the takeover');
    assert.ok(
      lines.slice(firstOfB).every((l) => l.pid === pidB),
      'one server delivered at a time: nothing of A after B took the lease over',
    );
  });
});
