// The authorization matrix: every mutating route × (no token, expired token, tampered token,
// a token without the capability, a token with it) → 401/401/401/403/2xx, and nothing written
// when refused. Plus: reads need a token, and the two alternatives (self, group manager).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CAPABILITIES, type Capability } from 'keyhold-plugin-sdk';
import { call, forgeToken, login, startTestServer, type ApiResponse, type TestServer } from '../support/keyhold.js';

const ROOT_SECRET = 'root-secret';
let server: TestServer;
let root: string;
/** A token per capability, of an entity holding only that capability. */
const holders = new Map<Capability, string>();
let nobody: string;

async function asRoot(method: string, path: string, body?: unknown): Promise<ApiResponse> {
  const response = await call(server.url, method, path, { token: root, ...(body !== undefined && { body }) });
  assert.ok(response.status < 300, `setup ${method} ${path}: ${response.status} ${response.text}`);
  return response;
}

async function createEntity(id: string, secret = 'pw'): Promise<void> {
  await asRoot('POST', '/v1/entities', { id, secret });
}

async function createGroup(name: string, body: Record<string, unknown> = {}): Promise<void> {
  await asRoot('POST', '/v1/groups', { name, ...body });
}

/** Everything observable: every entity and group in full. */
async function snapshot(): Promise<unknown> {
  const entities = await asRoot('GET', '/v1/entities?limit=1000');
  const groups = await asRoot('GET', '/v1/groups?limit=1000');
  return { entities: entities.body, groups: groups.body };
}

interface MutationCase {
  capability: Capability;
  method: string;
  /** Prepares the objects the request needs (fresh per case) and returns the request. */
  prepare(tag: string): Promise<{ path: string; body?: unknown; secretStillWorks?: { id: string; secret: string } }>;
  /** The success status. */
  ok: number;
}

const MUTATIONS: Record<string, MutationCase> = {
  'POST /v1/entities': {
    capability: 'CREATE_ENTITY',
    method: 'POST',
    ok: 201,
    prepare: async (t) => ({ path: '/v1/entities', body: { id: `new-${t}` } }),
  },
  'PATCH /v1/entities/:id': {
    capability: 'MODIFY_ENTITY_META',
    method: 'PATCH',
    ok: 200,
    prepare: async (t) => (await createEntity(t), { path: `/v1/entities/${t}`, body: { displayName: 'Changed' } }),
  },
  'POST /v1/entities/:id/untyped-meta': {
    capability: 'MODIFY_ENTITY_META',
    method: 'POST',
    ok: 200,
    prepare: async (t) => (
      await createEntity(t),
      { path: `/v1/entities/${t}/untyped-meta`, body: { action: 'upsert', key: 'k', value: 'v' } }
    ),
  },
  'POST /v1/entities/:id/kv': {
    capability: 'MODIFY_ENTITY_META',
    method: 'POST',
    ok: 200,
    prepare: async (t) => (await createEntity(t), { path: `/v1/entities/${t}/kv`, body: { action: 'add', key: 'phone', values: ['1'] } }),
  },
  'POST /v1/entities/:id/keys': {
    capability: 'MODIFY_ENTITY_KEYS',
    method: 'POST',
    ok: 200,
    prepare: async (t) => (
      await createEntity(t),
      { path: `/v1/entities/${t}/keys`, body: { action: 'add', value: 'ssh-ed25519 AAAA test' } }
    ),
  },
  'POST /v1/entities/:id/capabilities': {
    capability: 'GLOBAL_ROOT',
    method: 'POST',
    ok: 200,
    prepare: async (t) => (
      await createEntity(t),
      { path: `/v1/entities/${t}/capabilities`, body: { action: 'add', value: 'CREATE_GROUP' } }
    ),
  },
  'POST /v1/entities/:id/lock': {
    capability: 'LOCK_ENTITY',
    method: 'POST',
    ok: 200,
    prepare: async (t) => (await createEntity(t), { path: `/v1/entities/${t}/lock` }),
  },
  'POST /v1/entities/:id/unlock': {
    capability: 'UNLOCK_ENTITY',
    method: 'POST',
    ok: 200,
    prepare: async (t) => {
      await createEntity(t);
      await asRoot('POST', `/v1/entities/${t}/lock`);
      return { path: `/v1/entities/${t}/unlock` };
    },
  },
  'PUT /v1/entities/:id/secret': {
    capability: 'CHANGE_ENTITY_SECRET',
    method: 'PUT',
    ok: 204,
    prepare: async (t) => (
      await createEntity(t, 'old-secret'),
      { path: `/v1/entities/${t}/secret`, body: { secret: 'new-secret' }, secretStillWorks: { id: t, secret: 'old-secret' } }
    ),
  },
  'DELETE /v1/entities/:id': {
    capability: 'DESTROY_ENTITY',
    method: 'DELETE',
    ok: 204,
    prepare: async (t) => (await createEntity(t), { path: `/v1/entities/${t}` }),
  },
  'POST /v1/groups': {
    capability: 'CREATE_GROUP',
    method: 'POST',
    ok: 201,
    prepare: async (t) => ({ path: '/v1/groups', body: { name: `new-${t}` } }),
  },
  'PATCH /v1/groups/:name': {
    capability: 'MODIFY_GROUP_META',
    method: 'PATCH',
    ok: 200,
    prepare: async (t) => (await createGroup(t), { path: `/v1/groups/${t}`, body: { displayName: 'Changed' } }),
  },
  'POST /v1/groups/:name/untyped-meta': {
    capability: 'MODIFY_GROUP_META',
    method: 'POST',
    ok: 200,
    prepare: async (t) => (
      await createGroup(t),
      { path: `/v1/groups/${t}/untyped-meta`, body: { action: 'upsert', key: 'k', value: 'v' } }
    ),
  },
  'POST /v1/groups/:name/kv': {
    capability: 'MODIFY_GROUP_META',
    method: 'POST',
    ok: 200,
    prepare: async (t) => (await createGroup(t), { path: `/v1/groups/${t}/kv`, body: { action: 'add', key: 'room', values: ['101'] } }),
  },
  'POST /v1/groups/:name/capabilities': {
    capability: 'GLOBAL_ROOT',
    method: 'POST',
    ok: 200,
    prepare: async (t) => (await createGroup(t), { path: `/v1/groups/${t}/capabilities`, body: { action: 'add', value: 'LOCK_ENTITY' } }),
  },
  'POST /v1/groups/:name/expansions': {
    capability: 'MODIFY_GROUP_META',
    method: 'POST',
    ok: 200,
    prepare: async (t) => {
      await createGroup(t);
      await createGroup(`${t}-other`);
      return { path: `/v1/groups/${t}/expansions`, body: { action: 'add', mode: 'INCLUDE', group: `${t}-other` } };
    },
  },
  'PUT /v1/groups/:name/members/:entityId': {
    capability: 'MODIFY_GROUP_MEMBERS',
    method: 'PUT',
    ok: 200,
    prepare: async (t) => {
      await createGroup(t);
      await createEntity(`${t}-e`);
      return { path: `/v1/groups/${t}/members/${t}-e` };
    },
  },
  'DELETE /v1/groups/:name/members/:entityId': {
    capability: 'MODIFY_GROUP_MEMBERS',
    method: 'DELETE',
    ok: 200,
    prepare: async (t) => {
      await createGroup(t);
      await createEntity(`${t}-e`);
      await asRoot('PUT', `/v1/groups/${t}/members/${t}-e`);
      return { path: `/v1/groups/${t}/members/${t}-e` };
    },
  },
  'DELETE /v1/groups/:name': {
    capability: 'DESTROY_GROUP',
    method: 'DELETE',
    ok: 204,
    prepare: async (t) => (await createGroup(t), { path: `/v1/groups/${t}` }),
  },
  'POST /v1/plugins/reload': { capability: 'GLOBAL_ROOT', method: 'POST', ok: 200, prepare: async () => ({ path: '/v1/plugins/reload' }) },
  // No plugins here, so no actions: past the authorization, the answer is 404 (the whole path: test/plugins/totp.test.ts).
  'POST /v1/plugins/:plugin/actions/:action': {
    capability: 'GLOBAL_ROOT',
    method: 'POST',
    ok: 404,
    prepare: async () => ({ path: '/v1/plugins/totp/actions/enrol', body: { entity: 'alice' } }),
  },
  // The tokens of the previous key stay valid, so the rest of the run is not disturbed.
  'POST /v1/keys/rotate': {
    capability: 'GLOBAL_ROOT',
    method: 'POST',
    ok: 200,
    prepare: async () => ({ path: '/v1/keys/rotate', body: {} }),
  },
  // This server has no plugins, so no events: past the authorization, the answer is 404 (the whole path: events-server.test.ts).
  'POST /v1/events/:seq/retry': {
    capability: 'GLOBAL_ROOT',
    method: 'POST',
    ok: 404,
    prepare: async () => ({ path: '/v1/events/1/retry', body: {} }),
  },
  'POST /v1/events/:seq/skip': {
    capability: 'GLOBAL_ROOT',
    method: 'POST',
    ok: 404,
    prepare: async () => ({ path: '/v1/events/1/skip', body: {} }),
  },
  // No state kept here: past the authorization the answer is 404.
  'DELETE /v1/plugins/:name/state/:key': {
    capability: 'GLOBAL_ROOT',
    method: 'DELETE',
    ok: 404,
    prepare: async () => ({ path: '/v1/plugins/fail2lock/state/alice' }),
  },
};

/** Reads that need GLOBAL_ROOT, not only a token: committed events hold whole entities, past states included; a plugin's state holds whatever it keeps; the signing keys are for operators. */
const ROOT_READS = [
  'GET /v1/events',
  'GET /v1/events/:seq',
  'GET /v1/plugins/:name/state',
  'GET /v1/plugins/:name/state/:key',
  'GET /v1/keys',
];

/** Routes that change nothing and need no token: they are how a token is obtained or checked (forward-auth checks the end user's credentials a proxy passes on). */
const ANONYMOUS = [
  'POST /v1/auth/token',
  'POST /v1/auth/check',
  'POST /v1/auth/change-secret',
  'POST /v1/auth/validate',
  'GET /v1/auth/jwks',
  'GET /v1/forward-auth',
  'GET /healthz',
  'GET /metrics',
];

/** Changes that need a token and no capability: the caller acts on its own sessions (api-tokens.test.ts). */
const TOKEN_ONLY = ['POST /v1/auth/logout'];

/** The API's routes as its OpenAPI document lists them, e.g. "PUT /v1/groups/:name/members/:entityId"; `anonymous`: those documented as needing no token. */
async function documentedRoutes(anonymous = false): Promise<string[]> {
  const doc = (await call(server.url, 'GET', '/openapi.json')).body as { paths: Record<string, Record<string, { security?: unknown[] }>> };
  return Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods)
      .filter(([, operation]) => !anonymous || operation.security?.length === 0)
      .map(([m]) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
  );
}

before(async () => {
  server = await startTestServer(ROOT_SECRET);
  root = await login(server.url, 'root', ROOT_SECRET);
  for (const capability of CAPABILITIES) {
    const id = `holder-${capability.toLowerCase().replaceAll('_', '-')}`;
    await createEntity(id, 'holder-secret');
    await asRoot('POST', `/v1/entities/${id}/capabilities`, { action: 'add', value: capability });
    holders.set(capability, await login(server.url, id, 'holder-secret'));
  }
  await createEntity('nobody', 'nobody-secret');
  nobody = await login(server.url, 'nobody', 'nobody-secret');
});

after(() => server?.close());

describe('authorization matrix', () => {
  it('documents exactly the anonymous routes as needing no token', async () => {
    assert.deepEqual((await documentedRoutes(true)).sort(), [...ANONYMOUS].sort());
  });

  it('covers every mutating route the API documents', async () => {
    const mutating = (await documentedRoutes()).filter((r) => !r.startsWith('GET ') && !ANONYMOUS.includes(r) && !TOKEN_ONLY.includes(r));
    assert.deepEqual(mutating.sort(), Object.keys(MUTATIONS).sort());
  });

  let n = 0;
  for (const [route, spec] of Object.entries(MUTATIONS)) {
    it(`${route} needs ${spec.capability}`, async () => {
      const tag = `case${++n}`;
      const request = await spec.prepare(tag);
      const now = Math.floor(Date.now() / 1000);
      const expired = await forgeToken(server.dataDir, { sub: 'root', caps: ['GLOBAL_ROOT'], iat: now - 3600, exp: now - 60 });
      // Claims changed after signing: the signature no longer matches.
      const [header, , signature] = nobody.split('.');
      const tampered = `${header}.${Buffer.from(JSON.stringify({ sub: 'nobody', caps: ['GLOBAL_ROOT'], iss: 'keyhold', iat: now, exp: now + 600 })).toString('base64url')}.${signature}`;
      const without = spec.capability === 'GLOBAL_ROOT' ? holders.get('CREATE_ENTITY')! : nobody;
      const refusals: [string, string | undefined, number, string][] = [
        ['no token', undefined, 401, 'KH_ERR_UNAUTHENTICATED'],
        ['expired token', expired, 401, 'KH_ERR_TOKEN_EXPIRED'],
        ['tampered token', tampered, 401, 'KH_ERR_UNAUTHENTICATED'],
        ['token without the capability', without, 403, 'KH_ERR_FORBIDDEN'],
      ];
      const before = await snapshot();
      for (const [what, token, status, code] of refusals) {
        const response = await call(server.url, spec.method, request.path, {
          ...(token && { token }),
          ...(request.body !== undefined && { body: request.body }),
        });
        assert.equal(response.status, status, `${what}: ${response.text}`);
        assert.equal(response.body.code, code, what);
      }
      assert.deepEqual(await snapshot(), before, 'nothing was written by a refused request');
      if (request.secretStillWorks) {
        const check = await call(server.url, 'POST', '/v1/auth/check', { body: request.secretStillWorks });
        assert.equal(check.status, 200, 'the old secret still works');
      }
      const allowed = await call(server.url, spec.method, request.path, {
        token: holders.get(spec.capability)!,
        ...(request.body !== undefined && { body: request.body }),
      });
      assert.equal(allowed.status, spec.ok, `token with ${spec.capability}: ${allowed.text}`);
      const rooted = spec.capability === 'GLOBAL_ROOT' ? undefined : await spec.prepare(`${tag}-root`);
      if (rooted) {
        const byRoot = await call(server.url, spec.method, rooted.path, {
          token: root,
          ...(rooted.body !== undefined && { body: rooted.body }),
        });
        assert.equal(byRoot.status, spec.ok, `GLOBAL_ROOT satisfies ${spec.capability}: ${byRoot.text}`);
      }
    });
  }

  it('refuses initial group capabilities to a caller without GLOBAL_ROOT', async () => {
    const response = await call(server.url, 'POST', '/v1/groups', {
      token: holders.get('CREATE_GROUP')!,
      body: { name: 'escalate', capabilities: ['GLOBAL_ROOT'] },
    });
    assert.equal(response.status, 403);
    assert.equal((await call(server.url, 'GET', '/v1/groups/escalate', { token: root })).status, 404);
  });

  it('lets members of the managing group change memberships, and no one else', async () => {
    await createGroup('team-admins');
    await createGroup('team', { managedBy: 'team-admins' });
    await createEntity('manager', 'manager-secret');
    await createEntity('member');
    await asRoot('PUT', '/v1/groups/team-admins/members/manager');
    const manager = await login(server.url, 'manager', 'manager-secret');
    assert.equal((await call(server.url, 'PUT', '/v1/groups/team/members/member', { token: manager })).status, 200);
    assert.equal((await call(server.url, 'DELETE', '/v1/groups/team/members/member', { token: manager })).status, 200);
    assert.equal((await call(server.url, 'PUT', '/v1/groups/team/members/member', { token: nobody })).status, 403);
    // Managing a group's members is not managing the group.
    assert.equal((await call(server.url, 'PATCH', '/v1/groups/team', { token: manager, body: { displayName: 'x' } })).status, 403);
    assert.equal((await call(server.url, 'PUT', '/v1/groups/team-admins/members/member', { token: manager })).status, 403);
  });

  it('lets an entity change its own keys, not another one', async () => {
    const response = await call(server.url, 'POST', '/v1/entities/nobody/keys', {
      token: nobody,
      body: { action: 'add', value: 'ssh-ed25519 AAAA mine' },
    });
    assert.equal(response.status, 200, response.text);
    assert.equal(
      (
        await call(server.url, 'POST', '/v1/entities/root/keys', {
          token: nobody,
          body: { action: 'add', value: 'ssh-ed25519 AAAA theirs' },
        })
      ).status,
      403,
    );
  });

  it('requires a valid token for every read, and GLOBAL_ROOT for the committed events, plugin state and the signing keys', async () => {
    const reads = (await documentedRoutes()).filter((r) => r.startsWith('GET ') && !ANONYMOUS.includes(r));
    assert.ok(reads.length >= 10);
    for (const route of reads) {
      const path = route.slice(4).replace(':id', 'root').replace(':name', 'nonexistent').replace(':key', 'k').replace(':seq', '1');
      const anonymous = await call(server.url, 'GET', path);
      assert.equal(anonymous.status, 401, `${route} without a token`);
      const withToken = await call(server.url, 'GET', path, { token: nobody });
      if (ROOT_READS.includes(route)) {
        assert.equal(withToken.status, 403, `${route} without GLOBAL_ROOT: ${withToken.text}`);
        const byRoot = await call(server.url, 'GET', path, { token: holders.get('GLOBAL_ROOT')! });
        assert.ok(byRoot.status === 200 || byRoot.status === 404, `${route} with GLOBAL_ROOT: ${byRoot.status} ${byRoot.text}`);
      } else
        assert.ok(withToken.status === 200 || withToken.status === 404, `${route} with a token: ${withToken.status} ${withToken.text}`);
    }
  });

  it('issues tokens that carry effective capabilities and validate', async () => {
    await createGroup('lockers');
    await asRoot('POST', '/v1/groups/lockers/capabilities', { action: 'add', value: 'LOCK_ENTITY' });
    await createEntity('grouped', 'grouped-secret');
    await asRoot('PUT', '/v1/groups/lockers/members/grouped');
    const token = await login(server.url, 'grouped', 'grouped-secret');
    const claims = await call(server.url, 'POST', '/v1/auth/validate', { body: { token } });
    assert.equal(claims.status, 200);
    assert.equal(claims.body.sub, 'grouped');
    assert.deepEqual(claims.body.capabilities, ['LOCK_ENTITY']);
    const whoami = await call(server.url, 'GET', '/v1/auth/whoami', { token });
    assert.equal(whoami.body.sub, 'grouped');
    const invalid = await call(server.url, 'POST', '/v1/auth/validate', { body: { token: `${token}x` } });
    assert.equal(invalid.status, 401);
  });

  it('changes a secret by self-service only with the right old secret', async () => {
    await createEntity('selfie', 'first-secret');
    const wrong = await call(server.url, 'POST', '/v1/auth/change-secret', {
      body: { id: 'selfie', oldSecret: 'nope', newSecret: 'second-secret' },
    });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.code, 'KH_ERR_AUTH_FAILED');
    const right = await call(server.url, 'POST', '/v1/auth/change-secret', {
      body: { id: 'selfie', oldSecret: 'first-secret', newSecret: 'second-secret' },
    });
    assert.equal(right.status, 204, right.text);
    assert.equal((await call(server.url, 'POST', '/v1/auth/check', { body: { id: 'selfie', secret: 'first-secret' } })).status, 401);
    assert.equal((await call(server.url, 'POST', '/v1/auth/check', { body: { id: 'selfie', secret: 'second-secret' } })).status, 200);
  });
});
