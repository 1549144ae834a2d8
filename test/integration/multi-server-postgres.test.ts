// Two real keyhold server processes on one PostgreSQL database, as behind a load balancer: a write
// through one is read through the other at once; concurrent updates of one entity through both
// lose no update (each client retries on KH_ERR_CONFLICT); and a server killed with SIGKILL under
// a write load loses no acknowledged write while the other keeps serving. The token signing keys
// are in the database: B verifies A's tokens with nothing copied between their data directories.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { call, killChildren, login, scratchDir, serverEnv, startServerProcess, type ServerProcess } from '../support/keyhold.js';
import { freshDatabaseUrl, postgresSkip } from '../support/stores.js';

/** How often a client retries an update refused with KH_ERR_CONFLICT before the test gives up. */
const MAX_RETRIES = 100;

describe('two keyhold servers on one PostgreSQL', { skip: postgresSkip() }, () => {
  let a: ServerProcess;
  let b: ServerProcess;
  let token: string;

  before(async () => {
    const databaseUrl = await freshDatabaseUrl();
    const dataA = join(scratchDir('pg-server-a'), 'data');
    const dataB = join(scratchDir('pg-server-b'), 'data');
    a = await startServerProcess(serverEnv(dataA, { KEYHOLD_DATABASE_URL: databaseUrl, KEYHOLD_BOOTSTRAP: 'root:root-secret' }));
    b = await startServerProcess(serverEnv(dataB, { KEYHOLD_DATABASE_URL: databaseUrl }));
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
