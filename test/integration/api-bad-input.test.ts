// Bad input to every route: malformed JSON, wrong types, nulls, unknown fields, missing
// fields, oversized bodies, invalid ids and unicode edge cases. The answer is always a 4xx
// (or a 2xx when the odd input is in fact valid) with a catalog code, never a 5xx, and never a
// stack trace in the body.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ERRORS } from '../../src/errors.js';
import { call, login, startTestServer, type ApiResponse, type TestServer } from '../support/keyhold.js';

const BODY_LIMIT = 16 * 1024;
let server: TestServer;
let root: string;
/** The tokens of the entities routes are sent `as`. */
const tokens = new Map<string, string>();

interface RouteSample {
  method: string;
  /** A path whose ids exist, with ":id"/":name" etc. substituted. */
  path: string;
  /** A valid body, when the route takes one. */
  body?: Record<string, unknown>;
  /** Sent with the token of this entity (created for it) instead of root's: a route that would end root's session. */
  as?: string;
}

// One valid request per route; the test below checks this list against the OpenAPI document.
const ROUTES: Record<string, RouteSample> = {
  'POST /v1/entities': {
    method: 'POST',
    path: '/v1/entities',
    body: { id: 'fresh', number: 0, secret: 'pw', meta: { displayName: 'Fresh' } },
  },
  'GET /v1/entities': { method: 'GET', path: '/v1/entities?text=a&limit=5' },
  'GET /v1/entities/:id': { method: 'GET', path: '/v1/entities/alice' },
  'PATCH /v1/entities/:id': { method: 'PATCH', path: '/v1/entities/alice', body: { displayName: 'Alice', shell: '/bin/sh' } },
  'POST /v1/entities/:id/untyped-meta': {
    method: 'POST',
    path: '/v1/entities/alice/untyped-meta',
    body: { action: 'upsert', key: 'k', value: 'v' },
  },
  'POST /v1/entities/:id/kv': { method: 'POST', path: '/v1/entities/alice/kv', body: { action: 'replace', key: 'phone', values: ['1'] } },
  'GET /v1/entities/:id/kv/:key': { method: 'GET', path: '/v1/entities/alice/kv/phone' },
  'POST /v1/entities/:id/keys': { method: 'POST', path: '/v1/entities/alice/keys', body: { action: 'add', value: 'ssh-ed25519 AAAA x' } },
  'GET /v1/entities/:id/capabilities': { method: 'GET', path: '/v1/entities/alice/capabilities' },
  'POST /v1/entities/:id/capabilities': {
    method: 'POST',
    path: '/v1/entities/alice/capabilities',
    body: { action: 'add', value: 'LOCK_ENTITY' },
  },
  'POST /v1/entities/:id/lock': { method: 'POST', path: '/v1/entities/alice/lock' },
  'POST /v1/entities/:id/unlock': { method: 'POST', path: '/v1/entities/alice/unlock' },
  'PUT /v1/entities/:id/secret': { method: 'PUT', path: '/v1/entities/alice/secret', body: { secret: 'alice-secret' } },
  'GET /v1/entities/:id/groups': { method: 'GET', path: '/v1/entities/alice/groups?indirect=true' },
  'DELETE /v1/entities/:id': { method: 'DELETE', path: '/v1/entities/doomed' },
  'POST /v1/groups': {
    method: 'POST',
    path: '/v1/groups',
    body: {
      name: 'fresh-group',
      number: 0,
      displayName: 'G',
      managedBy: 'staff',
      capabilities: ['LOCK_ENTITY'],
      expansions: [{ mode: 'INCLUDE', group: 'staff' }],
    },
  },
  'GET /v1/groups': { method: 'GET', path: '/v1/groups?limit=5&after=a' },
  'GET /v1/groups/:name': { method: 'GET', path: '/v1/groups/staff' },
  'PATCH /v1/groups/:name': { method: 'PATCH', path: '/v1/groups/staff', body: { displayName: 'Staff', managedBy: '' } },
  'POST /v1/groups/:name/untyped-meta': {
    method: 'POST',
    path: '/v1/groups/staff/untyped-meta',
    body: { action: 'clear-fuzzy', key: 'k' },
  },
  'POST /v1/groups/:name/kv': { method: 'POST', path: '/v1/groups/staff/kv', body: { action: 'replace', key: 'room', values: ['1'] } },
  'GET /v1/groups/:name/kv/:key': { method: 'GET', path: '/v1/groups/staff/kv/room' },
  'POST /v1/groups/:name/capabilities': {
    method: 'POST',
    path: '/v1/groups/staff/capabilities',
    body: { action: 'add', value: 'LOCK_ENTITY' },
  },
  'POST /v1/groups/:name/expansions': {
    method: 'POST',
    path: '/v1/groups/staff/expansions',
    body: { action: 'add', mode: 'EXCLUDE', group: 'other' },
  },
  'GET /v1/groups/:name/members': { method: 'GET', path: '/v1/groups/staff/members' },
  'PUT /v1/groups/:name/members/:entityId': { method: 'PUT', path: '/v1/groups/staff/members/alice' },
  'DELETE /v1/groups/:name/members/:entityId': { method: 'DELETE', path: '/v1/groups/staff/members/alice' },
  'DELETE /v1/groups/:name': { method: 'DELETE', path: '/v1/groups/doomed' },
  'POST /v1/auth/token': { method: 'POST', path: '/v1/auth/token', body: { id: 'alice', secret: 'alice-secret' } },
  'POST /v1/auth/check': { method: 'POST', path: '/v1/auth/check', body: { id: 'alice', secret: 'alice-secret' } },
  'POST /v1/auth/change-secret': {
    method: 'POST',
    path: '/v1/auth/change-secret',
    body: { id: 'alice', oldSecret: 'alice-secret', newSecret: 'alice-secret' },
  },
  'POST /v1/auth/validate': { method: 'POST', path: '/v1/auth/validate', body: { token: 'x.y.z' } },
  'POST /v1/auth/logout': { method: 'POST', path: '/v1/auth/logout', as: 'leaver' },
  'GET /v1/auth/whoami': { method: 'GET', path: '/v1/auth/whoami' },
  'GET /v1/auth/jwks': { method: 'GET', path: '/v1/auth/jwks' },
  'GET /v1/forward-auth': { method: 'GET', path: '/v1/forward-auth?group=staff' },
  'GET /healthz': { method: 'GET', path: '/healthz' },
  'GET /metrics': { method: 'GET', path: '/metrics' },
  'GET /v1/system/status': { method: 'GET', path: '/v1/system/status' },
  'GET /v1/plugins': { method: 'GET', path: '/v1/plugins' },
  'POST /v1/plugins/reload': { method: 'POST', path: '/v1/plugins/reload' },
  'GET /v1/plugins/:name/state': { method: 'GET', path: '/v1/plugins/fail2lock/state?prefix=a&after=a&limit=5' },
  'GET /v1/plugins/:name/state/:key': { method: 'GET', path: '/v1/plugins/fail2lock/state/alice' },
  'DELETE /v1/plugins/:name/state/:key': { method: 'DELETE', path: '/v1/plugins/fail2lock/state/alice' },
  // No plugins here: a valid request is answered 404. The body is the action's arguments, which the plugin checks (totp.test.ts), so no fields are sampled.
  'POST /v1/plugins/:plugin/actions/:action': { method: 'POST', path: '/v1/plugins/totp/actions/enrol' },
  'GET /v1/keys': { method: 'GET', path: '/v1/keys' },
  'POST /v1/keys/rotate': { method: 'POST', path: '/v1/keys/rotate' },
  // No plugins here, so no events: a valid request is answered 404.
  'GET /v1/events': { method: 'GET', path: '/v1/events?after=0&limit=5&dead=true' },
  'GET /v1/events/:seq': { method: 'GET', path: '/v1/events/1' },
  'POST /v1/events/:seq/retry': { method: 'POST', path: '/v1/events/1/retry', body: { plugin: 'audit-log' } },
  'POST /v1/events/:seq/skip': { method: 'POST', path: '/v1/events/1/skip', body: { plugin: 'audit-log' } },
};

/** Strings that have broken servers before: control characters, lone surrogates, direction overrides, huge and empty. */
const UNICODE_EDGES = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udfffy',
  '\ufeffbom',
  '\u202eevil',
  'zero\u200bwidth',
  'e\u0301',
  '😀🏳️‍🌈',
  'ǅ',
  '\u{10FFFF}',
  '../..',
  '%00',
  'a'.repeat(5000),
  '\n\r\t',
  'null',
  '<script>',
];

/** Path segments that are not valid ids, or are odd ones. */
const ODD_IDS = [
  '%00',
  '%ED%A0%80',
  '%FF',
  encodeURIComponent('a'.repeat(400)),
  '%E2%80%AE',
  encodeURIComponent('😀'),
  '..%2F..',
  '%20',
  'a%2Fb',
  encodeURIComponent('\u0000x'),
];

const CODES = new Set(Object.keys(ERRORS));

/** The contract for every response: no 5xx; an error has a catalog code and no stack. */
function assertSafe(response: ApiResponse, what: string, allowed: (status: number) => boolean = (s) => s >= 400 && s < 500): void {
  assert.ok(response.status < 500, `${what}: got ${response.status} ${response.text.slice(0, 300)}`);
  assert.ok(allowed(response.status), `${what}: unexpected status ${response.status} ${response.text.slice(0, 300)}`);
  assert.doesNotMatch(response.text, /\bat .+:\d+:\d+|"stack"/, `${what}: the body carries a stack trace`);
  if (response.status >= 400) {
    assert.ok(response.body && CODES.has(response.body.code), `${what}: error body without a catalog code: ${response.text.slice(0, 300)}`);
    assert.equal(typeof response.body.message, 'string', what);
    assert.deepEqual(
      Object.keys(response.body).filter((k) => !['code', 'message', 'details'].includes(k)),
      [],
      `${what}: extra fields in the error body`,
    );
  }
}

const validOrRefused = (s: number) => (s >= 200 && s < 300) || (s >= 400 && s < 500);

function wrongTypeFor(value: unknown): unknown[] {
  if (typeof value === 'string') return [12345, true, ['x'], { s: 'x' }];
  if (typeof value === 'number') return ['12', 1.5, -1, 2 ** 40, true];
  if (Array.isArray(value)) return ['notalist', [123], [null], { 0: 'x' }];
  return ['x', 1, [value]];
}

function send(route: RouteSample, body: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> {
  return call(server.url, route.method, route.path, { token: route.as === undefined ? root : tokens.get(route.as)!, body, headers });
}

before(async () => {
  server = await startTestServer('root-secret', { KEYHOLD_BODY_LIMIT: String(BODY_LIMIT) });
  root = await login(server.url, 'root', 'root-secret');
  const setup: [string, string, unknown?][] = [
    ['POST', '/v1/entities', { id: 'alice', secret: 'alice-secret' }],
    ['POST', '/v1/entities', { id: 'doomed' }],
    ['POST', '/v1/groups', { name: 'staff' }],
    ['POST', '/v1/groups', { name: 'other' }],
    ['POST', '/v1/groups', { name: 'doomed' }],
  ];
  for (const [method, path, body] of setup) {
    const response = await call(server.url, method, path, { token: root, ...(body !== undefined && { body }) });
    assert.ok(response.status < 300, `setup ${method} ${path}: ${response.text}`);
  }
  for (const id of new Set(Object.values(ROUTES).flatMap((r) => r.as ?? []))) {
    await call(server.url, 'POST', '/v1/entities', { token: root, body: { id, secret: `${id}-secret` } });
    tokens.set(id, await login(server.url, id, `${id}-secret`));
  }
});

after(() => server?.close());

describe('bad input', () => {
  it('has a sample for every route the API documents', async () => {
    const doc = (await call(server.url, 'GET', '/openapi.json')).body as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
    );
    assert.deepEqual(documented.sort(), Object.keys(ROUTES).sort());
  });

  for (const [name, route] of Object.entries(ROUTES)) {
    it(name, async () => {
      if (route.method !== 'GET') {
        for (const raw of ['{"id": ', '{', 'nul', '{"a":1,}', "{'a':1}", '\u0000', '{"a":"\\ud800"']) {
          const response = await send(route, raw);
          assertSafe(response, `malformed JSON ${JSON.stringify(raw)}`, (s) => s === 400);
          assert.equal(response.body.code, 'KH_ERR_INVALID_INPUT');
        }
        const oversized = await send(route, JSON.stringify({ pad: 'x'.repeat(BODY_LIMIT + 10) }));
        assertSafe(oversized, 'oversized body', (s) => s === 413);
        assert.equal(oversized.body.code, 'KH_ERR_BODY_TOO_LARGE');
        assertSafe(
          await send(route, '{}', { 'content-type': 'text/plain' }),
          'a body that is not JSON',
          route.body ? (s) => s === 400 : validOrRefused,
        );
      }

      if (route.body) {
        for (const notAnObject of [[], null, 'str', 42, true, [route.body]]) {
          assertSafe(await send(route, JSON.stringify(notAnObject)), `body ${JSON.stringify(notAnObject)}`, (s) => s === 400);
        }
        assertSafe(await send(route, { ...route.body, bogus: 1 }), 'unknown field', (s) => s === 400);
        assertSafe(await send(route, { ...route.body, __proto__: { admin: true }, constructor: 'x' }), 'prototype keys', (s) => s === 400);
        for (const [key, value] of Object.entries(route.body)) {
          for (const wrong of [null, ...wrongTypeFor(value)]) {
            assertSafe(
              await send(route, { ...route.body, [key]: wrong }),
              `${key}: ${JSON.stringify(wrong)}`,
              (s) => s === 400 || (typeof value === 'number' && s < 300 && typeof wrong === 'number'),
            );
          }
          const rest = Object.fromEntries(Object.entries(route.body).filter(([k]) => k !== key));
          assertSafe(await send(route, rest), `without ${key}`, validOrRefused);
          if (typeof value === 'string') {
            for (const edge of UNICODE_EDGES)
              assertSafe(await send(route, { ...route.body, [key]: edge }), `${key}: ${JSON.stringify(edge.slice(0, 20))}`, validOrRefused);
          }
          if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
            assertSafe(await send(route, { ...route.body, [key]: { ...value, bogus: 1 } }), `${key}.bogus`, (s) => s === 400);
          }
        }
      }

      const segments = route.path.split('?')[0]!.split('/');
      for (let i = 2; i < segments.length; i++) {
        // Only the segments that are ids (the samples use these names for them).
        if (!['alice', 'staff', 'doomed', 'phone', 'room'].includes(segments[i]!)) continue;
        for (const odd of ODD_IDS) {
          const path = [...segments.slice(0, i), odd, ...segments.slice(i + 1)].join('/');
          assertSafe(
            await call(server.url, route.method, path, { token: root, ...(route.body && { body: route.body }) }),
            `id ${odd} in ${path.slice(0, 80)}`,
            validOrRefused,
          );
        }
      }

      if (route.path.includes('?') || route.path === '/v1/entities' || route.path === '/v1/groups') {
        const base = route.path.split('?')[0]!;
        for (const query of [
          'limit=abc',
          'limit=-1',
          'limit=0',
          'limit=99999',
          'bogus=1',
          'indirect=yes',
          'text=' + 'a'.repeat(300),
          'limit=1&limit=2',
          'text=%00',
          'text=%ED%A0%80',
        ]) {
          assertSafe(
            await call(server.url, 'GET', `${base}?${query}`, { token: root }),
            `query ${query.slice(0, 30)}`,
            (s) => s === 400 || s === 200,
          );
        }
      }
    });
  }

  it('answers unknown routes and methods with KH_ERR_NOT_FOUND', async () => {
    for (const [method, path] of [
      ['GET', '/nope'],
      ['GET', '/v1'],
      ['DELETE', '/v1/entities'],
      ['PATCH', '/v1/auth/token'],
      ['GET', '/v1/entities/alice/nope'],
      ['GET', '/%ZZ'],
    ]) {
      const response = await call(server.url, method!, path!, { token: root });
      assertSafe(response, `${method} ${path}`, (s) => s === 404 || s === 400);
    }
  });
});
