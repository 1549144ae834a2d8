// The authorization matrix with protected subjects: every capability held alone × every mutating
// route × a target that is plain, holds or confers GLOBAL_ROOT, holds or confers capabilities the
// caller lacks (LOCK_ENTITY and UNLOCK_ENTITY), or is the caller itself (for group routes: a group
// conferring exactly the caller's capability) → the status the rules predict, with the missing
// capabilities named, and nothing written when refused.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CAPABILITIES, type Capability } from 'keyhold-plugin-sdk';
import { AuthzServer } from '../support/authz.js';

type Target = 'plain' | 'root' | 'other' | 'self';

/** What the 'other' targets hold or confer: more than any single capability but GLOBAL_ROOT. */
const OTHER: Capability[] = ['LOCK_ENTITY', 'UNLOCK_ENTITY'];
const SUBJECT_TARGETS: Target[] = ['plain', 'root', 'other', 'self'];

interface Request {
  path: string;
  body?: unknown;
}

interface RouteCase {
  /** The route's own capability. */
  capability: Capability;
  method: string;
  ok: number;
  /** Also allowed to the entity itself (its own keys). */
  self?: boolean;
  /** Changes what its subject can do: protected subjects apply. */
  protects: boolean;
  targets: Target[];
  /** Creates the objects one request needs, fresh; `caller` is the calling entity, `capability` its one capability. */
  prepare(tag: string, target: Target, caller: string, capability: Capability): Promise<Request>;
}

let s: AuthzServer;
/** An entity per capability, holding only it, and its token; they are never the target of a request. */
const holders = new Map<Capability, { id: string; token: string }>();
let counter = 0;

/** An entity of the given kind; for 'self', the caller. */
async function entityTarget(tag: string, target: Target, caller: string): Promise<string> {
  if (target === 'self') return caller;
  await s.entity(tag, target === 'root' ? ['GLOBAL_ROOT'] : []);
  // Held through a group, so that effective capabilities count, not only direct ones.
  if (target === 'other') await s.member('other-holders', tag);
  return tag;
}

/** A group of the given kind; for 'self', one conferring exactly the caller's capability. */
async function groupTarget(tag: string, target: Target, capability: Capability): Promise<string> {
  const capabilities = { plain: [], root: ['GLOBAL_ROOT'], other: OTHER, self: [capability] }[target];
  return s.group(tag, { capabilities });
}

/** For membership routes: the entity and the group of a target kind (a plain group around the 'other' and 'self' entities). */
async function membershipTarget(tag: string, target: Target, caller: string, member: boolean): Promise<Request> {
  const group = await s.group(`${tag}-g`, { capabilities: target === 'root' ? ['GLOBAL_ROOT'] : [] });
  const entity = await entityTarget(`${tag}-e`, target === 'root' ? 'plain' : target, caller);
  if (member) await s.member(group, entity);
  return { path: `/v1/groups/${group}/members/${entity}` };
}

const entityRoute = (
  capability: Capability,
  method: string,
  ok: number,
  protects: boolean,
  request: (id: string) => Request,
  extra: Partial<RouteCase> = {},
): RouteCase => ({
  capability,
  method,
  ok,
  protects,
  targets: SUBJECT_TARGETS,
  prepare: async (tag, target, caller) => request(await entityTarget(tag, target, caller)),
  ...extra,
});

const groupRoute = (
  capability: Capability,
  method: string,
  ok: number,
  protects: boolean,
  request: (name: string, tag: string) => Request | Promise<Request>,
): RouteCase => ({
  capability,
  method,
  ok,
  protects,
  targets: SUBJECT_TARGETS,
  prepare: async (tag, target, _caller, capability) => request(await groupTarget(tag, target, capability), tag),
});

const MUTATIONS: Record<string, RouteCase> = {
  'POST /v1/entities': {
    capability: 'CREATE_ENTITY',
    method: 'POST',
    ok: 201,
    protects: false,
    targets: ['plain'],
    prepare: async (t) => ({ path: '/v1/entities', body: { id: t } }),
  },
  'PATCH /v1/entities/:id': entityRoute('MODIFY_ENTITY_META', 'PATCH', 200, false, (id) => ({
    path: `/v1/entities/${id}`,
    body: { displayName: 'Changed' },
  })),
  'POST /v1/entities/:id/untyped-meta': entityRoute('MODIFY_ENTITY_META', 'POST', 200, false, (id) => ({
    path: `/v1/entities/${id}/untyped-meta`,
    body: { action: 'upsert', key: 'k', value: 'v' },
  })),
  'POST /v1/entities/:id/kv': entityRoute('MODIFY_ENTITY_META', 'POST', 200, false, (id) => ({
    path: `/v1/entities/${id}/kv`,
    body: { action: 'add', key: 'phone', values: ['1'] },
  })),
  'POST /v1/entities/:id/keys': entityRoute(
    'MODIFY_ENTITY_KEYS',
    'POST',
    200,
    true,
    (id) => ({ path: `/v1/entities/${id}/keys`, body: { action: 'add', value: 'ssh-ed25519 AAAA test' } }),
    { self: true },
  ),
  'POST /v1/entities/:id/capabilities': entityRoute('GLOBAL_ROOT', 'POST', 200, true, (id) => ({
    path: `/v1/entities/${id}/capabilities`,
    body: { action: 'add', value: 'CREATE_GROUP' },
  })),
  'POST /v1/entities/:id/lock': entityRoute('LOCK_ENTITY', 'POST', 200, true, (id) => ({ path: `/v1/entities/${id}/lock` })),
  'POST /v1/entities/:id/unlock': {
    ...entityRoute('UNLOCK_ENTITY', 'POST', 200, true, (id) => ({ path: `/v1/entities/${id}/unlock` })),
    // A locked entity cannot act, so it cannot be its own target.
    targets: ['plain', 'root', 'other'],
    prepare: async (tag, target, caller) => {
      const id = await entityTarget(tag, target, caller);
      await s.asRoot('POST', `/v1/entities/${id}/lock`);
      return { path: `/v1/entities/${id}/unlock` };
    },
  },
  'PUT /v1/entities/:id/secret': entityRoute('CHANGE_ENTITY_SECRET', 'PUT', 204, true, (id) => ({
    path: `/v1/entities/${id}/secret`,
    body: { secret: 'new-secret' },
  })),
  'DELETE /v1/entities/:id': entityRoute('DESTROY_ENTITY', 'DELETE', 204, true, (id) => ({ path: `/v1/entities/${id}` })),
  'POST /v1/groups': {
    capability: 'CREATE_GROUP',
    method: 'POST',
    ok: 201,
    protects: false,
    targets: ['plain'],
    prepare: async (t) => ({ path: '/v1/groups', body: { name: t } }),
  },
  'PATCH /v1/groups/:name': groupRoute('MODIFY_GROUP_META', 'PATCH', 200, true, async (name, tag) => ({
    path: `/v1/groups/${name}`,
    body: { displayName: 'Changed', managedBy: await s.group(`${tag}-manager`) },
  })),
  'POST /v1/groups/:name/untyped-meta': groupRoute('MODIFY_GROUP_META', 'POST', 200, false, (name) => ({
    path: `/v1/groups/${name}/untyped-meta`,
    body: { action: 'upsert', key: 'k', value: 'v' },
  })),
  'POST /v1/groups/:name/kv': groupRoute('MODIFY_GROUP_META', 'POST', 200, false, (name) => ({
    path: `/v1/groups/${name}/kv`,
    body: { action: 'add', key: 'room', values: ['101'] },
  })),
  'POST /v1/groups/:name/capabilities': groupRoute('GLOBAL_ROOT', 'POST', 200, true, (name) => ({
    path: `/v1/groups/${name}/capabilities`,
    body: { action: 'add', value: 'CREATE_ENTITY' },
  })),
  'POST /v1/groups/:name/expansions': groupRoute('MODIFY_GROUP_META', 'POST', 200, true, async (name, tag) => ({
    path: `/v1/groups/${name}/expansions`,
    body: { action: 'add', mode: 'INCLUDE', group: await s.group(`${tag}-other`) },
  })),
  'PUT /v1/groups/:name/members/:entityId': {
    capability: 'MODIFY_GROUP_MEMBERS',
    method: 'PUT',
    ok: 200,
    protects: true,
    targets: SUBJECT_TARGETS,
    prepare: (tag, target, caller) => membershipTarget(tag, target, caller, false),
  },
  'DELETE /v1/groups/:name/members/:entityId': {
    capability: 'MODIFY_GROUP_MEMBERS',
    method: 'DELETE',
    ok: 200,
    protects: true,
    targets: SUBJECT_TARGETS,
    prepare: (tag, target, caller) => membershipTarget(tag, target, caller, true),
  },
  'DELETE /v1/groups/:name': groupRoute('DESTROY_GROUP', 'DELETE', 204, true, (name) => ({ path: `/v1/groups/${name}` })),
  'POST /v1/plugins/reload': {
    capability: 'GLOBAL_ROOT',
    method: 'POST',
    ok: 200,
    protects: false,
    targets: ['plain'],
    prepare: async () => ({ path: '/v1/plugins/reload' }),
  },
  // No state kept: past the authorization the answer is 404 (the whole path: plugin-state-server.test.ts).
  'DELETE /v1/plugins/:name/state/:key': {
    capability: 'GLOBAL_ROOT',
    method: 'DELETE',
    ok: 404,
    protects: false,
    targets: ['plain'],
    prepare: async () => ({ path: '/v1/plugins/fail2lock/state/alice' }),
  },
  // No plugins here, so no actions: past the authorization the answer is 404 (the whole path: test/plugins/totp.test.ts).
  'POST /v1/plugins/:plugin/actions/:action': {
    capability: 'GLOBAL_ROOT',
    method: 'POST',
    ok: 404,
    protects: false,
    targets: ['plain'],
    prepare: async () => ({ path: '/v1/plugins/totp/actions/enrol', body: { entity: 'alice' } }),
  },
  'POST /v1/keys/rotate': {
    capability: 'GLOBAL_ROOT',
    method: 'POST',
    ok: 200,
    protects: false,
    targets: ['plain'],
    prepare: async () => ({ path: '/v1/keys/rotate', body: {} }),
  },
  // No plugins here, so no events: past the authorization the answer is 404 (the whole path: events-server.test.ts).
  'POST /v1/events/:seq/retry': {
    capability: 'GLOBAL_ROOT',
    method: 'POST',
    ok: 404,
    protects: false,
    targets: ['plain'],
    prepare: async () => ({ path: '/v1/events/1/retry', body: {} }),
  },
  'POST /v1/events/:seq/skip': {
    capability: 'GLOBAL_ROOT',
    method: 'POST',
    ok: 404,
    protects: false,
    targets: ['plain'],
    prepare: async () => ({ path: '/v1/events/1/skip', body: {} }),
  },
};

/** The status the rules predict, and the capabilities a refusal names. */
function expected(route: RouteCase, caller: Capability, target: Target): { status: number; needed?: Capability[] } {
  const root = caller === 'GLOBAL_ROOT';
  if (!(root || caller === route.capability || (route.self && target === 'self'))) return { status: 403, needed: [route.capability] };
  if (route.protects && !root && target === 'root') return { status: 403, needed: ['GLOBAL_ROOT'] };
  if (route.protects && !root && target === 'other') return { status: 403, needed: OTHER.filter((c) => c !== caller) };
  return { status: route.ok };
}

before(async () => {
  s = await AuthzServer.start();
  await s.group('other-holders', { capabilities: OTHER });
  for (const capability of CAPABILITIES) {
    const id = await s.entity(`holder-${capability.toLowerCase().replaceAll('_', '-')}`, [capability]);
    holders.set(capability, { id, token: (await s.login(id))! });
  }
});

after(() => s?.close());

describe('authorization matrix with protected subjects', () => {
  it('covers every mutating route the API documents', async () => {
    const doc = (await s.call(undefined, 'GET', '/openapi.json')).body as {
      paths: Record<string, Record<string, { security?: unknown[] }>>;
    };
    const mutating = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.entries(methods)
        .filter(([method, operation]) => method !== 'get' && operation.security?.length !== 0)
        .map(([method]) => `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
    );
    // Logout needs only a token and ends the caller's own sessions (test/integration/api-tokens.test.ts).
    assert.deepEqual(mutating.filter((r) => r !== 'POST /v1/auth/logout').sort(), Object.keys(MUTATIONS).sort());
  });

  for (const [name, route] of Object.entries(MUTATIONS)) {
    for (const target of route.targets) {
      it(`${name} on a ${target} target`, async () => {
        const attempt = async (caller: Capability, token: string, request: Request) => {
          const want = expected(route, caller, target);
          const response = await s.call(token, route.method, request.path, request.body);
          const what = `${caller} on a ${target} target: ${response.text}`;
          assert.equal(response.status, want.status, what);
          if (want.needed)
            assert.deepEqual(
              { code: response.body.code, needed: response.body.details?.needed },
              { code: 'KH_ERR_FORBIDDEN', needed: want.needed },
              what,
            );
        };
        if (target === 'self') {
          // Each caller acts on itself: a refused one is its capability's holder (nothing may change it), an allowed
          // one a fresh entity holding the one capability, so that what it does to itself touches no other case.
          for (const capability of CAPABILITIES) {
            const refused = expected(route, capability, target).status === 403;
            const id = refused ? holders.get(capability)!.id : await s.entity(`self-${++counter}`, [capability]);
            const token = refused ? holders.get(capability)!.token : (await s.login(id))!;
            const request = await route.prepare(`self-case-${++counter}`, target, id, capability);
            const before = s.snapshot();
            await attempt(capability, token, request);
            if (refused) assert.deepEqual(s.snapshot(), before, `a refused ${capability} wrote nothing`);
          }
          return;
        }
        // The refused callers share one target (nothing may change it); each allowed one gets a fresh target.
        const shared = await route.prepare(`case-${++counter}`, target, '', 'GLOBAL_ROOT');
        const before = s.snapshot();
        for (const capability of CAPABILITIES) {
          if (expected(route, capability, target).status === 403) await attempt(capability, holders.get(capability)!.token, shared);
        }
        assert.deepEqual(s.snapshot(), before, 'refused requests wrote nothing');
        for (const capability of CAPABILITIES) {
          const { id, token } = holders.get(capability)!;
          if (expected(route, capability, target).status !== 403)
            await attempt(capability, token, await route.prepare(`case-${++counter}`, target, id, capability));
        }
      });
    }
  }
});
