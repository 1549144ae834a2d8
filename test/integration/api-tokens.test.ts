// Revocable tokens: a token stops working as soon as its entity is locked, destroyed (or destroyed
// and created again), has its secret changed, loses a capability by any path, or logs out; tokens
// with claims this server would not issue are refused; and the normal path keeps working, across
// many requests and a restart.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { startServer, type ServerHandle } from '../../src/server.js';
import {
  call,
  forgeToken,
  login,
  scratchDir,
  serverEnv,
  startTestServer,
  tokenClaims,
  type ApiResponse,
  type ForgedClaims,
  type TestServer,
} from '../support/keyhold.js';

const ROOT_SECRET = 'root-secret';
let server: TestServer;
let root: string;

async function asRoot(method: string, path: string, body?: unknown): Promise<ApiResponse> {
  const response = await call(server.url, method, path, { token: root, ...(body !== undefined && { body }) });
  assert.ok(response.status < 300, `setup ${method} ${path}: ${response.status} ${response.text}`);
  return response;
}

/** Creates the entity (with the capabilities given directly) and returns a token of it. */
async function entityWithToken(id: string, capabilities: string[] = []): Promise<string> {
  await asRoot('POST', '/v1/entities', { id, secret: `${id}-secret` });
  for (const value of capabilities) await asRoot('POST', `/v1/entities/${id}/capabilities`, { action: 'add', value });
  return login(server.url, id, `${id}-secret`);
}

function whoami(token: string): Promise<ApiResponse> {
  return call(server.url, 'GET', '/v1/auth/whoami', { token });
}

async function assertWorks(token: string, what: string): Promise<void> {
  const response = await whoami(token);
  assert.equal(response.status, 200, `${what}: ${response.text}`);
}

async function assertRevoked(token: string, what: string): Promise<void> {
  const response = await whoami(token);
  assert.equal(response.status, 401, `${what}: ${response.text}`);
  assert.equal(response.body.code, 'KH_ERR_TOKEN_REVOKED', what);
  assert.match(response.body.message, /log in again/);
}

before(async () => {
  server = await startTestServer(ROOT_SECRET);
  root = await login(server.url, 'root', ROOT_SECRET);
});

after(() => server?.close());

describe('tokens are checked against the store on every request', () => {
  it('refuses the token of a locked entity, which cannot unlock itself with it, nor use it after an unlock', async () => {
    const token = await entityWithToken('locked-one', ['UNLOCK_ENTITY']);
    await assertWorks(token, 'before the lock');
    await asRoot('POST', '/v1/entities/locked-one/lock');
    await assertRevoked(token, 'while locked');
    const unlock = await call(server.url, 'POST', '/v1/entities/locked-one/unlock', { token });
    assert.equal(unlock.status, 401, unlock.text);
    assert.equal(unlock.body.code, 'KH_ERR_TOKEN_REVOKED');
    assert.equal((await asRoot('GET', '/v1/entities/locked-one')).body.meta.locked, true, 'still locked');
    await asRoot('POST', '/v1/entities/locked-one/unlock');
    await assertRevoked(token, 'a lock ends the tokens for good: not back after the unlock');
    await assertWorks(await login(server.url, 'locked-one', 'locked-one-secret'), 'a new login after the unlock');
  });

  it('refuses the token of a destroyed entity, even one that held GLOBAL_ROOT', async () => {
    const token = await entityWithToken('second-root', ['GLOBAL_ROOT']);
    assert.equal((await call(server.url, 'POST', '/v1/entities', { token, body: { id: 'made-by-second-root' } })).status, 201);
    await asRoot('DELETE', '/v1/entities/second-root');
    const response = await call(server.url, 'POST', '/v1/entities', { token, body: { id: 'made-after-destroy' } });
    assert.equal(response.status, 401, response.text);
    assert.equal(response.body.code, 'KH_ERR_TOKEN_REVOKED');
    assert.equal((await call(server.url, 'GET', '/v1/entities/made-after-destroy', { token: root })).status, 404, 'nothing was created');
  });

  it('refuses an old token for an entity destroyed and created again with the same id and number', async () => {
    const token = await entityWithToken('reborn', ['CREATE_GROUP']);
    const { number } = (await asRoot('GET', '/v1/entities/reborn')).body;
    await asRoot('DELETE', '/v1/entities/reborn');
    await asRoot('POST', '/v1/entities', { id: 'reborn', number, secret: 'reborn-secret' });
    await asRoot('POST', '/v1/entities/reborn/capabilities', { action: 'add', value: 'CREATE_GROUP' });
    assert.equal((await asRoot('GET', '/v1/entities/reborn')).body.number, number);
    await assertRevoked(token, 'the token of the earlier entity');
    await assertWorks(await login(server.url, 'reborn', 'reborn-secret'), 'a login of the new one');
  });

  it('refuses tokens issued before a secret change, by an administrator or by the entity itself', async () => {
    const first = await entityWithToken('rekeyed');
    await asRoot('PUT', '/v1/entities/rekeyed/secret', { secret: 'second-secret' });
    await assertRevoked(first, 'after the administrator set the secret');
    const second = await login(server.url, 'rekeyed', 'second-secret');
    await assertWorks(second, 'a login with the new secret');
    const change = await call(server.url, 'POST', '/v1/auth/change-secret', {
      body: { id: 'rekeyed', oldSecret: 'second-secret', newSecret: 'third-secret' },
    });
    assert.equal(change.status, 204, change.text);
    await assertRevoked(second, 'after the self-service change');
  });

  it('refuses a token after the entity lost a capability it carries', async () => {
    const token = await entityWithToken('demoted', ['CREATE_GROUP', 'LOCK_ENTITY']);
    await asRoot('POST', '/v1/entities/demoted/capabilities', { action: 'remove', value: 'CREATE_GROUP' });
    const response = await call(server.url, 'POST', '/v1/groups', { token, body: { name: 'made-by-demoted' } });
    assert.equal(response.status, 401, response.text);
    assert.equal(response.body.code, 'KH_ERR_TOKEN_REVOKED');
    assert.equal((await call(server.url, 'GET', '/v1/groups/made-by-demoted', { token: root })).status, 404, 'nothing was created');
  });

  it('refuses a token after the entity left the group that gave a capability', async () => {
    await asRoot('POST', '/v1/groups', { name: 'creators-a', capabilities: ['CREATE_GROUP'] });
    await asRoot('POST', '/v1/entities', { id: 'leaver', secret: 'leaver-secret' });
    await asRoot('PUT', '/v1/groups/creators-a/members/leaver');
    const token = await login(server.url, 'leaver', 'leaver-secret');
    assert.deepEqual((await whoami(token)).body.capabilities, ['CREATE_GROUP']);
    await asRoot('DELETE', '/v1/groups/creators-a/members/leaver');
    await assertRevoked(token, 'after leaving the group');
  });

  it('refuses a token after a group the entity is in lost the capability', async () => {
    await asRoot('POST', '/v1/groups', { name: 'creators-b', capabilities: ['CREATE_GROUP'] });
    await asRoot('POST', '/v1/entities', { id: 'stayer', secret: 'stayer-secret' });
    await asRoot('PUT', '/v1/groups/creators-b/members/stayer');
    const token = await login(server.url, 'stayer', 'stayer-secret');
    await assertWorks(token, 'before the change');
    await asRoot('POST', '/v1/groups/creators-b/capabilities', { action: 'remove', value: 'CREATE_GROUP' });
    await assertRevoked(token, 'after the group lost the capability');
  });

  it('refuses a token after an expansion that gave a capability was removed', async () => {
    await asRoot('POST', '/v1/groups', { name: 'inner' });
    await asRoot('POST', '/v1/groups', {
      name: 'outer',
      capabilities: ['CREATE_GROUP'],
      expansions: [{ mode: 'INCLUDE', group: 'inner' }],
    });
    await asRoot('POST', '/v1/entities', { id: 'expanded', secret: 'expanded-secret' });
    await asRoot('PUT', '/v1/groups/inner/members/expanded');
    const token = await login(server.url, 'expanded', 'expanded-secret');
    assert.deepEqual((await whoami(token)).body.capabilities, ['CREATE_GROUP']);
    await asRoot('POST', '/v1/groups/outer/expansions', { action: 'remove', mode: 'INCLUDE', group: 'inner' });
    await assertRevoked(token, 'after the expansion was removed');
  });

  it('ends a token whose capabilities differ from the current ones in either direction (log in again for a new one)', async () => {
    const token = await entityWithToken('promoted');
    await asRoot('POST', '/v1/entities/promoted/capabilities', { action: 'add', value: 'CREATE_GROUP' });
    await assertRevoked(token, 'after gaining a capability');
    assert.deepEqual((await whoami(await login(server.url, 'promoted', 'promoted-secret'))).body.capabilities, ['CREATE_GROUP']);
  });

  it('logout revokes every token of the caller and no other; a new login works', async () => {
    const first = await entityWithToken('leaving');
    const second = await login(server.url, 'leaving', 'leaving-secret');
    const bystander = await entityWithToken('bystander');
    const logout = await call(server.url, 'POST', '/v1/auth/logout', { token: first });
    assert.equal(logout.status, 204, logout.text);
    await assertRevoked(first, 'the token logged out with');
    await assertRevoked(second, 'another session of the same entity');
    await assertWorks(bystander, 'another entity');
    assert.equal((await call(server.url, 'POST', '/v1/auth/logout', { token: first })).status, 401, 'a revoked token cannot log out again');
    assert.equal((await call(server.url, 'POST', '/v1/auth/logout')).status, 401, 'logout needs a token');
    await assertWorks(await login(server.url, 'leaving', 'leaving-secret'), 'a new login');
  });

  it('applies the same checks in POST /v1/auth/validate', async () => {
    const token = await entityWithToken('validated');
    assert.equal((await call(server.url, 'POST', '/v1/auth/validate', { body: { token } })).status, 200);
    await asRoot('POST', '/v1/entities/validated/lock');
    const response = await call(server.url, 'POST', '/v1/auth/validate', { body: { token } });
    assert.equal(response.status, 401, response.text);
    assert.equal(response.body.code, 'KH_ERR_TOKEN_REVOKED');
  });
});

describe('token claims', () => {
  /** A token of `id` as the server issued it, and a forged copy with the changes given. */
  async function forgedLike(id: string, changes: Partial<ForgedClaims>): Promise<string> {
    const real = tokenClaims(await login(server.url, id, `${id}-secret`));
    return forgeToken(server.dataDir, { ...real, ...changes });
  }

  before(async () => {
    await asRoot('POST', '/v1/entities', { id: 'claimant', secret: 'claimant-secret' });
  });

  it('accepts a forged copy of a real token (so the refusals below are about the one claim changed)', async () => {
    await assertWorks(await forgedLike('claimant', {}), 'an exact copy');
    const now = Math.floor(Date.now() / 1000);
    await assertWorks(await forgedLike('claimant', { iat: now + 30, exp: now + 600 }), 'issued 30 s ahead: within the clock skew');
  });

  it('refuses a token issued in the future', async () => {
    const now = Math.floor(Date.now() / 1000);
    const response = await whoami(await forgedLike('claimant', { iat: now + 3600, exp: now + 3600 + 300 }));
    assert.equal(response.status, 401, response.text);
    assert.equal(response.body.code, 'KH_ERR_UNAUTHENTICATED');
  });

  it('refuses a token that lives longer than tokenTtl', async () => {
    const now = Math.floor(Date.now() / 1000);
    const response = await whoami(await forgedLike('claimant', { iat: now, exp: now + 24 * 3600 }));
    assert.equal(response.status, 401, response.text);
    assert.equal(response.body.code, 'KH_ERR_UNAUTHENTICATED');
  });

  it('refuses a token for another audience, or for none', async () => {
    for (const aud of ['some-other-service', null]) {
      const response = await whoami(await forgedLike('claimant', { aud }));
      assert.equal(response.status, 401, `aud ${aud}: ${response.text}`);
      assert.equal(response.body.code, 'KH_ERR_UNAUTHENTICATED');
    }
  });

  it('refuses a token without a generation', async () => {
    const response = await whoami(await forgedLike('claimant', { gen: undefined }));
    assert.equal(response.status, 401, response.text);
  });
});

describe('the normal path', () => {
  it('keeps a token of an unchanged entity working across many requests while others change', async () => {
    const token = await entityWithToken('steady', ['CREATE_GROUP']);
    for (let i = 0; i < 50; i++) {
      await assertWorks(token, `request ${i}`);
      // A commit about another entity drops the cache; the next request reads again.
      if (i % 10 === 0) await asRoot('PATCH', '/v1/entities/root', { displayName: `Root ${i}` });
    }
    assert.equal((await call(server.url, 'POST', '/v1/groups', { token, body: { name: 'made-by-steady' } })).status, 201);
  });

  it('keeps a token working after a server restart on the same data directory', async () => {
    const dataDir = scratchDir('tokens-restart');
    const env = serverEnv(dataDir, { KEYHOLD_BOOTSTRAP: 'root:restart-secret' });
    const start = () => startServer({ env, logger: pino({ level: 'silent' }) });
    let handle: ServerHandle = await start();
    try {
      const token = await login(handle.url, 'root', 'restart-secret');
      await handle.close();
      handle = await start();
      const response = await call(handle.url, 'GET', '/v1/auth/whoami', { token });
      assert.equal(response.status, 200, response.text);
      assert.equal(response.body.sub, 'root');
    } finally {
      await handle.close();
    }
  });
});
