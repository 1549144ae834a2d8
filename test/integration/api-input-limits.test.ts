// Input the schemas alone did not stop: bodies nested deep enough to exhaust a recursive check,
// request lines and headers over the HTTP parser's limit, names with invisible or meaningless
// code points, bytes that are not UTF-8, keys JavaScript gives a meaning to, and query
// parameters a route does not declare. Each gets a 4xx with a catalog code and writes nothing.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ERRORS } from '../../src/errors.js';
import { MAX_BODY_DEPTH } from '../../src/api/request-input.js';
import { call, login, startTestServer, type ApiResponse, type TestServer } from '../support/keyhold.js';

let server: TestServer;
let root: string;

before(async () => {
  server = await startTestServer('root-secret');
  root = await login(server.url, 'root', 'root-secret');
  for (const [path, body] of [
    ['/v1/entities', { id: 'alice' }],
    ['/v1/groups', { name: 'staff' }],
  ] as const) {
    assert.equal((await call(server.url, 'POST', path, { token: root, body })).status, 201);
  }
});
after(() => server?.close());

function assertRefused(response: ApiResponse, status: number, code: keyof typeof ERRORS, message?: RegExp): void {
  assert.equal(response.status, status, response.text.slice(0, 300));
  assert.equal(response.body?.code, code, response.text.slice(0, 300));
  if (message) assert.match(response.body.message, message);
}

/** A JSON text of `depth` nested arrays (or objects) around a number. */
function nested(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array' ? `${'['.repeat(depth)}1${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

/** Sends raw bytes over TCP and returns everything the server answered before closing. */
function rawExchange(request: string | Buffer): Promise<string> {
  const { hostname, port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.end(request));
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('utf8')));
    socket.on('error', reject);
    socket.on('close', () => resolve(answer));
  });
}

/** The JSON body of a raw HTTP response. */
function rawBody(answer: string): { code: string; message: string } {
  return JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { code: string; message: string };
}

async function entityIds(): Promise<string[]> {
  return ((await call(server.url, 'GET', '/v1/entities?limit=1000', { token: root })).body.entities as { id: string }[]).map((e) => e.id);
}

describe('deeply nested bodies', () => {
  for (const kind of ['array', 'object'] as const) {
    it(`refuses ${kind}s nested 60 KB deep with 400 naming the limit, on an anonymous and an authenticated route`, async () => {
      const deep = nested(kind === 'array' ? 30_000 : 10_000, kind);
      assert.ok(deep.length >= 50_000);
      assertRefused(
        await call(server.url, 'POST', '/v1/auth/token', { body: deep }),
        400,
        'KH_ERR_INVALID_INPUT',
        new RegExp(`nested more than ${MAX_BODY_DEPTH} levels deep`),
      );
      assertRefused(
        await call(server.url, 'POST', '/v1/entities', { token: root, body: deep }),
        400,
        'KH_ERR_INVALID_INPUT',
        /nested more than 32 levels deep/,
      );
      // A route without a body schema reads the body too.
      assertRefused(
        await call(server.url, 'POST', '/v1/entities/alice/lock', { token: root, body: deep }),
        400,
        'KH_ERR_INVALID_INPUT',
        /nested more than 32 levels deep/,
      );
    });
  }

  it('counts the levels: at the limit the schema answers, one more is the depth error', async () => {
    const atLimit = await call(server.url, 'POST', '/v1/entities', {
      token: root,
      body: `{"id":"x","meta":${nested(MAX_BODY_DEPTH - 1, 'object')}}`,
    });
    assertRefused(atLimit, 400, 'KH_ERR_INVALID_INPUT', /body meta\.a: unknown field/);
    const over = await call(server.url, 'POST', '/v1/entities', {
      token: root,
      body: `{"id":"x","meta":${nested(MAX_BODY_DEPTH, 'object')}}`,
    });
    assertRefused(over, 400, 'KH_ERR_INVALID_INPUT', /nested more than 32 levels deep/);
    assert.equal(over.body.details.in, 'body');
  });
});

describe('what the HTTP parser refuses', () => {
  it('answers a 100 KB query string with 431 and a catalog body', async () => {
    assertRefused(
      await call(server.url, 'GET', `/v1/entities?text=${'a'.repeat(100_000)}`, { token: root }),
      431,
      'KH_ERR_HEADERS_TOO_LARGE',
      /over the limit of \d+ bytes/,
    );
  });

  it('answers an oversized header with 431 and a catalog body, also on an anonymous route', async () => {
    const answer = await rawExchange(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: ${'p'.repeat(100_000)}\r\n\r\n`);
    assert.match(answer, /^HTTP\/1\.1 431 /);
    assert.equal(rawBody(answer).code, 'KH_ERR_HEADERS_TOO_LARGE');
  });

  it('answers a request line that is not HTTP with 400 and a catalog body', async () => {
    const answer = await rawExchange('NOT HTTP AT ALL\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.equal(rawBody(answer).code, 'KH_ERR_INVALID_INPUT');
  });
});

describe('code points in ids, group names and keys', () => {
  const BAD: [string, string, RegExp][] = [
    ['U+202E', 'a\u202eb', /U\+202E RIGHT-TO-LEFT OVERRIDE, a format character/],
    ['U+200B', 'a\u200bb', /U\+200B ZERO WIDTH SPACE/],
    ['U+2066', 'a\u2066b', /U\+2066 LEFT-TO-RIGHT ISOLATE/],
    ['U+FEFF', '\ufeffab', /U\+FEFF/],
    ['U+0007', 'a\u0007b', /U\+0007, a control character/],
    ['U+E000', 'a\ue000b', /private-use/],
    ['U+0378', 'a\u0378b', /unassigned/],
    ['U+2028', 'a\u2028b', /line or paragraph separator/],
    ['U+FFFD', 'a\ufffdb', /U\+FFFD REPLACEMENT CHARACTER/],
  ];
  for (const [label, name, message] of BAD) {
    it(`refuses ${label} in an entity id, a group name and a kv key, and writes nothing`, async () => {
      assertRefused(
        await call(server.url, 'POST', '/v1/entities', { token: root, body: { id: name } }),
        400,
        'KH_ERR_INVALID_NAME',
        message,
      );
      assertRefused(await call(server.url, 'POST', '/v1/groups', { token: root, body: { name } }), 400, 'KH_ERR_INVALID_NAME', message);
      assertRefused(
        await call(server.url, 'POST', '/v1/entities/alice/kv', { token: root, body: { action: 'add', key: name, values: ['x'] } }),
        400,
        'KH_ERR_INVALID_INPUT',
        message,
      );
      assertRefused(
        await call(server.url, 'POST', '/v1/groups/staff/untyped-meta', { token: root, body: { action: 'upsert', key: name, value: 'x' } }),
        400,
        'KH_ERR_INVALID_INPUT',
        message,
      );
      assert.deepEqual(await entityIds(), ['alice', 'root']);
      assert.deepEqual((await call(server.url, 'GET', '/v1/entities/alice', { token: root })).body.meta.kv, {});
    });
  }

  it('still accepts letters, marks and symbols beyond ASCII', async () => {
    for (const id of ['équipe-ß', 'e\u0301', '日本', '😀']) {
      assert.equal((await call(server.url, 'POST', '/v1/entities', { token: root, body: { id } })).status, 201, id);
      assert.equal((await call(server.url, 'DELETE', `/v1/entities/${encodeURIComponent(id)}`, { token: root })).status, 204, id);
    }
  });

  it('serves an id of the longest allowed length in a path (128 characters)', async () => {
    const id = 'x'.repeat(128);
    assert.equal((await call(server.url, 'POST', '/v1/entities', { token: root, body: { id } })).status, 201);
    assert.equal((await call(server.url, 'GET', `/v1/entities/${id}`, { token: root })).status, 200);
    assert.equal((await call(server.url, 'DELETE', `/v1/entities/${id}`, { token: root })).status, 204);
  });
});

describe('bytes that are not UTF-8', () => {
  it('refuses a JSON body with invalid UTF-8 and says where, instead of storing U+FFFD', async () => {
    const bytes = Buffer.concat([Buffer.from('{"id":"mal'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    const response = await fetch(`${server.url}/v1/entities`, {
      method: 'POST',
      headers: { authorization: `Bearer ${root}`, 'content-type': 'application/json' },
      body: bytes,
    });
    const body = (await response.json()) as { code: string; message: string };
    assert.equal(response.status, 400);
    assert.equal(body.code, 'KH_ERR_INVALID_INPUT');
    assert.match(body.message, /body: not valid UTF-8 \(at byte 10\)/);
    assert.deepEqual(await entityIds(), ['alice', 'root']);
  });

  it('refuses a JSON body declared in another charset, instead of reading it as UTF-8 anyway', async () => {
    const send = (contentType: string) =>
      call(server.url, 'POST', '/v1/entities', { token: root, body: '{"id":"latin"}', headers: { 'content-type': contentType } });
    assertRefused(await send('application/json; charset=latin1'), 400, 'KH_ERR_INVALID_INPUT', /charset=latin1; JSON bodies are UTF-8/);
    assert.deepEqual(await entityIds(), ['alice', 'root']);
    assert.equal((await send('application/json; charset="UTF-8"')).status, 201);
  });

  it('accepts a body holding a real U+FFFD in a text field (only names refuse it)', async () => {
    const response = await call(server.url, 'PATCH', '/v1/entities/alice', { token: root, body: { displayName: 'a\ufffdb' } });
    assert.equal(response.status, 200, response.text);
  });

  it('refuses a path whose percent-encoding is not UTF-8', async () => {
    for (const id of ['a%FFb', '%ED%A0%80', '%C0%AF']) {
      assertRefused(await call(server.url, 'GET', `/v1/entities/${id}`, { token: root }), 400, 'KH_ERR_INVALID_INPUT', /not valid UTF-8/);
    }
  });

  it('refuses a query string whose percent-encoding is not UTF-8, naming the parameter', async () => {
    for (const query of ['text=%FF', 'text=%ED%A0%80', 'after=a%E2%82', 'text=%zz']) {
      const response = await call(server.url, 'GET', `/v1/entities?${query}`, { token: root });
      assertRefused(response, 400, 'KH_ERR_INVALID_INPUT', /^querystring (text|after): the value .* is not percent-encoded UTF-8/);
      assert.equal(response.body.details.in, 'querystring');
    }
  });
});

describe('reserved keys', () => {
  for (const key of ['__proto__', 'constructor', 'prototype']) {
    it(`refuses the kv key ${key} with 400 and writes nothing`, async () => {
      assertRefused(
        await call(server.url, 'POST', '/v1/entities/alice/kv', { token: root, body: { action: 'add', key, values: ['x'] } }),
        400,
        'KH_ERR_INVALID_INPUT',
        /it is reserved/,
      );
      assertRefused(
        await call(server.url, 'POST', '/v1/groups/staff/kv', { token: root, body: { action: 'add', key, values: ['x'] } }),
        400,
        'KH_ERR_INVALID_INPUT',
        /it is reserved/,
      );
      assertRefused(
        await call(server.url, 'POST', '/v1/entities/alice/untyped-meta', { token: root, body: { action: 'upsert', key, value: 'x' } }),
        400,
        'KH_ERR_INVALID_INPUT',
        /it is reserved/,
      );
      assertRefused(await call(server.url, 'GET', `/v1/entities/alice/kv/${key}`, { token: root }), 404, 'KH_ERR_KV_KEY_NOT_FOUND');
      const alice = (await call(server.url, 'GET', '/v1/entities/alice', { token: root })).body;
      assert.deepEqual([alice.meta.kv, alice.meta.untypedMeta], [{}, []]);
    });

    it(`refuses ${key} as a key anywhere in a body`, async () => {
      const response = await call(server.url, 'POST', '/v1/auth/check', {
        body: `{"id":"alice","secret":"x","extra":{"${key}":{"polluted":true}}}`,
      });
      assertRefused(response, 400, 'KH_ERR_INVALID_INPUT', new RegExp(`body extra\\.${key}: the key "${key}" is reserved`));
    });
  }
});

describe('query parameters', () => {
  it('refuses an unknown query parameter on routes without a query string, naming it', async () => {
    for (const [method, path] of [
      ['GET', '/v1/entities/alice'],
      ['GET', '/v1/groups/staff/members'],
      ['POST', '/v1/entities/alice/lock'],
      ['GET', '/healthz'],
      ['GET', '/v1/auth/whoami'],
    ]) {
      const response = await call(server.url, method!, `${path}?force=1`, { token: root });
      assertRefused(response, 400, 'KH_ERR_INVALID_INPUT', /^querystring force: unknown field$/);
      assert.deepEqual(response.body.details.problems, [{ path: 'force', problem: 'unknown field' }]);
    }
    const alice = (await call(server.url, 'GET', '/v1/entities/alice', { token: root })).body;
    assert.equal(alice.meta.locked, false, 'the refused lock was not done');
  });

  it('refuses an unknown query parameter next to known ones', async () => {
    assertRefused(
      await call(server.url, 'GET', '/v1/entities?limit=5&bogus=1', { token: root }),
      400,
      'KH_ERR_INVALID_INPUT',
      /querystring bogus: unknown field/,
    );
    assertRefused(
      await call(server.url, 'GET', '/v1/entities/alice/groups?indirect=true&deep=1', { token: root }),
      400,
      'KH_ERR_INVALID_INPUT',
      /querystring deep: unknown field/,
    );
    assert.equal((await call(server.url, 'GET', '/v1/entities?limit=5', { token: root })).status, 200);
  });
});
