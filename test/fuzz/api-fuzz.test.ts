// Fuzzing every route the server documents (read from its own /openapi.json, so a new route is
// covered without touching this file) with malformed, deep, huge and odd-Unicode input in the
// body, the path parameters, the query string and the headers. For every answer: never a 5xx,
// every error body carries a catalog code; and afterwards the store is exactly as it was. The
// inputs are bad by construction (path parameters never name an existing subject, names in
// bodies always break the name rule), so any change to the store is a bug, not bad luck.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, it } from 'node:test';
import fc from 'fast-check';
import { ERRORS } from '../../src/errors.js';
import { call, login, startTestServer, type TestServer } from '../support/keyhold.js';

const BODY_LIMIT = 64 * 1024;
/** About 10 s here; the time limit keeps the file under 30 s on a loaded machine. */
const RUNS = 1000;
const TIME_LIMIT_MS = 20_000;
const CODES = new Set(Object.keys(ERRORS));

let server: TestServer;
let root: string;
/** Sent instead of root's token to logout, which would otherwise end root's session (and every later request's). */
let alice: string;

/** The parts of a JSON schema the generators follow. */
interface Schema {
  type?: string;
  enum?: unknown[];
  properties?: Record<string, Schema>;
  items?: Schema;
}

interface Route {
  method: string;
  /** The OpenAPI path, e.g. /v1/entities/{id}/kv/{key}. */
  path: string;
  /** The request body's schema, when the route takes a body. */
  body?: Schema;
  queryNames: string[];
}

let routes: Route[];

/** Everything a root token can read: every entity and group, whole. */
async function snapshot(): Promise<unknown> {
  const entities = await call(server.url, 'GET', '/v1/entities?limit=1000', { token: root });
  const groups = await call(server.url, 'GET', '/v1/groups?limit=1000', { token: root });
  assert.equal(entities.status, 200);
  assert.equal(groups.status, 200);
  return { entities: entities.body, groups: groups.body };
}

before(async () => {
  server = await startTestServer('root-secret', { KEYHOLD_BODY_LIMIT: String(BODY_LIMIT) });
  root = await login(server.url, 'root', 'root-secret');
  const setup: [string, string, unknown][] = [
    ['POST', '/v1/entities', { id: 'alice', secret: 'alice-secret', meta: { displayName: 'Alice' } }],
    ['POST', '/v1/entities/alice/kv', { action: 'add', key: 'phone', values: ['1'] }],
    ['POST', '/v1/groups', { name: 'managers' }],
    ['POST', '/v1/groups', { name: 'staff', managedBy: 'managers' }],
    ['PUT', '/v1/groups/staff/members/alice', undefined],
  ];
  for (const [method, path, body] of setup)
    assert.ok(
      (await call(server.url, method, path, { token: root, ...(body !== undefined && { body }) })).status < 300,
      `${method} ${path}`,
    );
  alice = await login(server.url, 'alice', 'alice-secret');
  const doc = (await call(server.url, 'GET', '/openapi.json')).body as {
    paths: Record<
      string,
      Record<string, { parameters?: { in: string; name: string }[]; requestBody?: { content: Record<string, { schema: Schema }> } }>
    >;
  };
  routes = Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => {
      const body = operation.requestBody?.content['application/json']?.schema;
      return {
        method: method.toUpperCase(),
        path,
        ...(body && { body }),
        queryNames: (operation.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name),
      };
    }),
  );
  assert.ok(routes.length >= 30, `the OpenAPI document lists ${routes.length} routes`);
});
after(() => server?.close());

// Generators

/** Code points no name may hold: each makes a name invalid wherever it appears. */
const FORBIDDEN = [
  '\u0000',
  '\u0007',
  '\u007f',
  ' ',
  '\t',
  '\u00a0',
  '\u00ad',
  '\u200b',
  '\u200d',
  '\u202e',
  '\u2066',
  '\u2069',
  '\u2028',
  '\ufeff',
  '\ud800',
  '\udfff',
  '\ue000',
  '\u0378',
  '\ufdd0',
  '\ufffd',
];

/** Odd but well-formed text and worse: any code point, lone surrogates, combining marks, emoji, RTL, long runs. */
const oddText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({
    unit: fc.constantFrom(...FORBIDDEN, 'a', 'é', 'e\u0301', '😀', '🏳️‍🌈', 'ǅ', 'ا', '../', '%', '%00', '"', '\\', '<'),
    maxLength: 20,
  }),
  fc.integer({ min: 100, max: 6000 }).map((n) => 'x'.repeat(n)),
  fc.constantFrom('', '__proto__', 'constructor', 'prototype', 'null', 'true', '0', '-1', '-rf', 'root', 'alice', 'staff'),
);

/** A name that breaks the rule: a forbidden code point, too long, empty, or a leading '-'. */
const badName = fc.oneof(
  fc
    .tuple(fc.string({ maxLength: 10 }), fc.constantFrom(...FORBIDDEN), fc.string({ unit: 'binary', maxLength: 10 }))
    .map(([a, bad, b]) => a + bad + b),
  fc.integer({ min: 129, max: 400 }).map((n) => 'n'.repeat(n)),
  fc.constantFrom('', '-', '-alice', '__proto__', 'constructor', 'prototype'),
);

/** JSON text nested up to 60 KB deep: kept as text, as JSON.stringify and fast-check's reports would recurse through it. */
const deepText = fc.oneof(
  fc.integer({ min: 20, max: 30_000 }).map((depth) => `${'['.repeat(depth)}${']'.repeat(depth)}`),
  fc.integer({ min: 20, max: 10_000 }).map((depth) => `${'{"d":'.repeat(depth)}0${'}'.repeat(depth)}`),
);
const anyValue = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  { weight: 2, arbitrary: oddText },
  { weight: 1, arbitrary: fc.constantFrom(null, -1, 1.5, 2 ** 53, [], {}, [null]) },
);

const NAME_FIELDS = new Set(['id', 'name', 'key', 'group', 'managedBy', 'entityId']);

/** A value that mostly fits `schema` (its enum, its type, odd text for strings), sometimes anything; names always break the rule. */
function valueFor(schema: Schema, field = ''): fc.Arbitrary<unknown> {
  if (NAME_FIELDS.has(field)) return badName;
  const fitting: fc.Arbitrary<unknown> = schema.enum
    ? fc.constantFrom(...schema.enum)
    : schema.properties
      ? shaped(schema)
      : schema.type === 'string'
        ? oddText
        : schema.type === 'integer'
          ? fc.oneof(fc.integer({ min: -5, max: 2 ** 31 }), fc.constant(0))
          : schema.type === 'array'
            ? fc.array(valueFor(schema.items ?? {}), { maxLength: 4 })
            : anyValue;
  return fc.oneof({ weight: 4, arbitrary: fitting }, { weight: 1, arbitrary: anyValue });
}

/** An object with the schema's fields (all of them, or some), sometimes with extra keys. */
function shaped(schema: Schema): fc.Arbitrary<unknown> {
  const fields = Object.fromEntries(Object.entries(schema.properties ?? {}).map(([name, property]) => [name, valueFor(property, name)]));
  const known = fc.oneof(fc.record(fields), fc.record(fields, { requiredKeys: [] }));
  const extra = fc.oneof(
    { weight: 3, arbitrary: fc.constant({}) },
    { weight: 1, arbitrary: fc.dictionary(oddText, anyValue, { maxKeys: 3 }) },
  );
  return fc.tuple(known, extra).map(([k, e]) => ({ ...e, ...k }));
}

type Body = { kind: 'none' } | { kind: 'json'; value: unknown } | { kind: 'raw'; bytes: Uint8Array; contentType: string };

function bodyFor(route: Route): fc.Arbitrary<Body> {
  const json = (value: fc.Arbitrary<unknown>) => value.map((v): Body => ({ kind: 'json', value: v }));
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant<Body>({ kind: 'none' }) },
    { weight: route.body ? 5 : 0, arbitrary: json(shaped(route.body ?? {})) },
    { weight: 2, arbitrary: json(anyValue) },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.constantFrom('', ...Object.keys(route.body?.properties ?? {}), 'x'), deepText).map(([field, deep]): Body => ({
        kind: 'raw',
        bytes: new TextEncoder().encode(field ? `{${JSON.stringify(field)}:${deep}}` : deep),
        contentType: 'application/json',
      })),
    },
    {
      weight: 1,
      arbitrary: fc
        .string({ unit: 'binary', maxLength: 200 })
        .map((text): Body => ({ kind: 'raw', bytes: new TextEncoder().encode(text), contentType: 'application/json' })),
    },
    {
      weight: 1,
      arbitrary: fc.uint8Array({ maxLength: 300 }).map((bytes): Body => ({ kind: 'raw', bytes, contentType: 'application/json' })),
    },
    {
      weight: 1,
      arbitrary: fc.integer({ min: BODY_LIMIT - 100, max: 4 * BODY_LIMIT }).map((n): Body => ({
        kind: 'raw',
        bytes: new TextEncoder().encode(JSON.stringify({ pad: 'p'.repeat(n) })),
        contentType: 'application/json',
      })),
    },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom('text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', 'multipart/form-data', '')
        .map((contentType): Body => ({ kind: 'raw', bytes: new TextEncoder().encode('{"id":"x"}'), contentType })),
    },
  );
}

/** Percent-encodes text for a URL; a lone surrogate (which has no UTF-8) becomes '?'. */
function encode(text: string): string {
  return encodeURIComponent(text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '?'));
}

/** A path parameter as it goes in the URL: an odd value encoded, or an encoding that is not UTF-8. Never an existing subject. */
const pathParam = fc
  .oneof(
    { weight: 3, arbitrary: oddText.map(encode) },
    { weight: 1, arbitrary: fc.constantFrom('%FF', '%ED%A0%80', '%C0%AF', '%E2%82', '%zz', '%', '%00', '..', '.', '%2F', '%2e%2e') },
  )
  .filter((encoded) => {
    let decoded: string;
    try {
      decoded = decodeURIComponent(encoded);
    } catch {
      return true;
    }
    return decoded !== '' && !['alice', 'staff', 'root', 'phone'].includes(decoded);
  });

function queryFor(route: Route): fc.Arbitrary<string> {
  const name = fc.oneof(fc.constantFrom(...route.queryNames, 'bogus', '__proto__', 'limit', 'a[b]', ''), oddText.map(encode));
  const value = fc.oneof(oddText.map(encode), fc.constantFrom('%FF', '%ED%A0%80', '%zz', '1', '0', '-1', '99999', 'true'));
  return fc.oneof(
    { weight: 8, arbitrary: fc.constant('') },
    {
      weight: 4,
      arbitrary: fc.array(fc.tuple(name, value), { maxLength: 4 }).map((pairs) => pairs.map(([n, v]) => `${n}=${v}`).join('&')),
    },
    { weight: 1, arbitrary: fc.integer({ min: 1000, max: 20_000 }).map((n) => `text=${'q'.repeat(n)}`) },
  );
}

/** Extra headers fetch can send (no CR, LF or NUL), some large, and the authorization to use. */
const headers = fc.record({
  authorization: fc.oneof(
    { weight: 6, arbitrary: fc.constant('root') },
    { weight: 1, arbitrary: fc.constantFrom('', 'Bearer', 'Bearer x.y.z', 'Basic cm9vdDpwdw==', `Bearer ${'t'.repeat(9000)}`) },
  ),
  extra: fc.dictionary(
    fc.stringMatching(/^x-[a-z0-9-]{1,20}$/),
    fc.oneof(
      { weight: 12, arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: 50 }).map((v) => v.replace(/[\r\n\0]/g, '')) },
      { weight: 1, arbitrary: fc.integer({ min: 1000, max: 40_000 }).map((n) => 'h'.repeat(n)) },
    ),
    { maxKeys: 3 },
  ),
});

const request = fc.integer({ min: 0, max: 10_000 }).chain((pick) => {
  const route = routes[pick % routes.length]!;
  const params = (route.path.match(/\{\w+\}/g) ?? []).map(() => pathParam);
  return fc.record({ route: fc.constant(route), params: fc.tuple(...params), query: queryFor(route), body: bodyFor(route), headers });
});

// The property

it(`answers ${RUNS} fuzzed requests across every documented route without a 5xx, with catalog codes, changing nothing`, async () => {
  const before = await snapshot();
  let sent = 0;
  await fc.assert(
    fc.asyncProperty(request, async ({ route, params, query, body, headers: h }) => {
      let i = 0;
      const path = route.path.replace(/\{\w+\}/g, () => params[i++] as string) + (query ? `?${query}` : '');
      const sentHeaders: Record<string, string> = { ...h.extra };
      if (h.authorization === 'root') sentHeaders.authorization = `Bearer ${route.path === '/v1/auth/logout' ? alice : root}`;
      else if (h.authorization !== '') sentHeaders.authorization = h.authorization;
      let payload: Uint8Array | string | undefined;
      if (body.kind === 'json') {
        payload = JSON.stringify(body.value) ?? 'null';
        sentHeaders['content-type'] = 'application/json';
      } else if (body.kind === 'raw') {
        payload = body.bytes;
        if (body.contentType) sentHeaders['content-type'] = body.contentType;
      }
      const what = `${route.method} ${path.slice(0, 120)} body ${body.kind === 'json' ? JSON.stringify(body.value)?.slice(0, 120) : body.kind}`;
      const response = await fetch(server.url + path, {
        method: route.method,
        headers: sentHeaders,
        ...(payload !== undefined && route.method !== 'GET' && { body: payload }),
      });
      const text = await response.text();
      sent++;
      assert.ok(response.status < 500, `${what}: ${response.status} ${text.slice(0, 300)}`);
      if (response.status >= 400) {
        const error = JSON.parse(text) as Record<string, unknown>;
        assert.ok(CODES.has(error.code as string), `${what}: no catalog code in ${text.slice(0, 300)}`);
        assert.equal(typeof error.message, 'string', what);
        assert.deepEqual(
          Object.keys(error).filter((k) => !['code', 'message', 'details'].includes(k)),
          [],
          `${what}: extra fields`,
        );
      }
    }),
    { numRuns: RUNS, interruptAfterTimeLimit: TIME_LIMIT_MS },
  );
  assert.ok(sent >= Math.min(RUNS, 50), `only ${sent} requests were sent in the time limit`);
  assert.deepEqual(await snapshot(), before, 'the store is exactly as it was');
});

it('answers garbage sent as an HTTP request head with a catalog body or a closed connection', async () => {
  const { hostname, port } = new URL(server.url);
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ minLength: 1, maxLength: 400 }),
        fc.string({ unit: 'binary', maxLength: 200 }).map((s) => new TextEncoder().encode(`GET /${s} HTTP/1.1\r\nHost: x\r\n\r\n`)),
      ),
      async (bytes) => {
        const answer = await new Promise<string>((resolve, reject) => {
          const socket = connect(Number(port), hostname, () => socket.end(bytes));
          let text = '';
          socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
          socket.on('error', (err: NodeJS.ErrnoException) =>
            err.code === 'ECONNRESET' || err.code === 'EPIPE' ? resolve(text) : reject(err),
          );
          socket.on('close', () => resolve(text));
        });
        if (answer === '') return;
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
        assert.ok(status < 500, answer.slice(0, 300));
        if (status >= 400) {
          // The first response only: garbage can hold several requests, answered one after another.
          const start = answer.indexOf('\r\n\r\n') + 4;
          const length = Number(/\r\ncontent-length: (\d+)/i.exec(answer.slice(0, start))?.[1]);
          assert.ok(CODES.has((JSON.parse(answer.slice(start, start + length)) as { code: string }).code), answer.slice(0, 300));
        }
      },
    ),
    { numRuns: 60, interruptAfterTimeLimit: 5_000 },
  );
});
