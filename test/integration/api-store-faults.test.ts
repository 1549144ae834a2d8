// Store faults over HTTP: a database locked by another process makes a write wait (without
// stalling the server: /healthz answers meanwhile) and then 503 KH_ERR_STORE_BUSY with
// Retry-After; a full disk makes a write 507 KH_ERR_STORE_FULL and /healthz degraded (503); the
// anonymous /healthz says only the status, a token shows the store's and the plugins' details.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { buildApi } from '../../src/api/app.js';
import { TokenRevocation } from '../../src/api/revocation.js';
import { loadConfig } from '../../src/config.js';
import { LoginThrottle } from '../../src/identity/login-throttle.js';
import { TokenService } from '../../src/api/tokens.js';
import { bootstrapRoot } from '../../src/bootstrap.js';
import { Identity } from '../../src/identity/identity.js';
import { NO_PLUGINS } from '../../src/lifecycle/dispatcher.js';
import { LifecycleEngine } from '../../src/lifecycle/engine.js';
import { DATABASE_FILE } from '../../src/server.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { FAST_HASH } from '../support/identity-harness.js';
import { call, login, scratchDir, startTestServer, type ApiResponse } from '../support/keyhold.js';
import { fillDisk, holdDatabaseLock } from '../support/store-faults.js';

const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

/** The API on a store the test holds, wired as server.ts wires it (no plugins), with root:pw. */
async function apiOnStore(): Promise<{ url: string; store: SqliteStore }> {
  const dataDir = scratchDir('faults');
  const store = SqliteStore.open(join(dataDir, DATABASE_FILE));
  closers.push(() => store.close());
  const logger = pino({ level: 'silent' });
  const defaults = loadConfig({ env: {}, cwd: dataDir });
  const identity = new Identity(store, new LifecycleEngine(store, NO_PLUGINS), { hash: FAST_HASH });
  await bootstrapRoot({
    identity,
    countEntities: () => store.reader.countEntities(),
    source: { credentials: 'root:pw', file: undefined },
    recordRoot: (id) => store.write((tx) => tx.recordBootstrapRoot(id)),
    logger,
  });
  const app = await buildApi({
    identity,
    tokens: await TokenService.open(store, 600_000, dataDir, logger),
    revocation: new TokenRevocation(store, (id) => identity.effectiveCapabilities(id)),
    logger,
    metrics: new Registry(),
    bodyLimitBytes: 65536,
    storeCheck: () => store.reader.countEntities(),
    storeHealth: () => store.health(),
    clientAddress: defaults.api,
    forwardAuth: { settings: defaults.forwardAuth, store },
    throttle: new LoginThrottle(store, defaults.loginThrottle),
  });
  closers.push(() => app.close());
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  return { url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`, store };
}

describe('a database locked by another process', () => {
  it('a write gets 503 KH_ERR_STORE_BUSY with Retry-After, and /healthz answers while it waits', async () => {
    const server = await startTestServer('pw', { KEYHOLD_STORE_BUSY_TIMEOUT: '2s' });
    closers.push(() => server.close());
    const token = await login(server.url, 'root', 'pw');
    const lock = holdDatabaseLock(join(server.dataDir, DATABASE_FILE));
    let writeAnswer: Response | undefined;
    try {
      const write = fetch(`${server.url}/v1/entities`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ id: 'waiting' }),
      }).then((r) => (writeAnswer = r));
      // Bounded: the write is queued within a few polls; each poll is a whole health answer.
      let health: ApiResponse | undefined;
      for (let poll = 0; poll < 200 && !(health?.body?.store?.queuedWrites >= 1); poll++)
        health = await call(server.url, 'GET', '/healthz', { token });
      assert.equal(writeAnswer, undefined, 'the write was still waiting when /healthz answered');
      assert.equal(health?.status, 503);
      assert.deepEqual(health?.body.status, 'degraded');
      assert.deepEqual(health?.body.store, {
        reads: 'ok',
        writes: 'busy',
        problem: 'another process holds the database lock',
        queuedWrites: 1,
      });
      assert.deepEqual((await call(server.url, 'GET', '/healthz')).body, { status: 'degraded' }, 'anonymous: the status only');
      assert.equal((await call(server.url, 'GET', '/v1/entities/root', { token })).status, 200, 'reads are served meanwhile');

      const response = await write;
      assert.equal(response.status, 503);
      assert.equal(response.headers.get('retry-after'), '1');
      const body = (await response.json()) as { code: string; message: string };
      assert.equal(body.code, 'KH_ERR_STORE_BUSY');
      assert.match(body.message, /locked by another process \(waited 2000 ms/);
    } finally {
      lock.release();
    }
    assert.equal((await call(server.url, 'GET', '/v1/entities/waiting', { token })).status, 404, 'nothing was written');
    assert.equal((await call(server.url, 'POST', '/v1/entities', { token, body: { id: 'waiting' } })).status, 201);
    assert.deepEqual((await call(server.url, 'GET', '/healthz')).body, { status: 'ok' });
  });
});

describe('a full disk', () => {
  it('a write gets 507 KH_ERR_STORE_FULL and writes nothing; /healthz is degraded until a write succeeds', async () => {
    const { url, store } = await apiOnStore();
    const token = await login(url, 'root', 'pw');
    const full = fillDisk(store);
    let refused: ApiResponse | undefined;
    let created = 0;
    // Bounded: each entity is a few KB, so a new page is needed within a few writes.
    for (let i = 0; i < 100 && refused === undefined; i++) {
      const response = await call(url, 'POST', '/v1/entities', {
        token,
        body: { id: `filler-${i}`, meta: { displayName: 'x'.repeat(3000) } },
      });
      if (response.status === 201) created++;
      else refused = response;
    }
    assert.equal(refused?.status, 507, refused?.text);
    assert.equal(refused?.body.code, 'KH_ERR_STORE_FULL');
    assert.equal((await call(url, 'GET', `/v1/entities/filler-${created}`, { token })).status, 404, 'the refused entity is not there');

    const health = await call(url, 'GET', '/healthz', { token });
    assert.equal(health.status, 503);
    assert.equal(health.body.status, 'degraded');
    assert.equal(health.body.store.writes, 'full');
    assert.deepEqual((await call(url, 'GET', '/healthz')).body, { status: 'degraded' });

    full.undo();
    assert.equal((await call(url, 'POST', '/v1/entities', { token, body: { id: 'after-cleanup' } })).status, 201);
    const healthy = await call(url, 'GET', '/healthz', { token });
    assert.equal(healthy.status, 200);
    assert.deepEqual(healthy.body, { status: 'ok', store: { reads: 'ok', writes: 'ok', queuedWrites: 0 }, plugins: [] });
  });
});
