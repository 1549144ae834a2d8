// /v1/forward-auth on a real server without a proxy in front: its settings (defaults, file,
// environment, errors naming the key), rules from the query and from keyhold.yaml, the Envoy form
// (original path appended, rule in X-Keyhold-Rule), bodies ignored, identity headers (renamed,
// left out, non-ASCII names encoded), tokens, the cache switched off, and no 5xx for any input.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import YAML from 'yaml';
import { ConfigError, loadConfig } from '../../src/config.js';
import { startServer, type ServerHandle } from '../../src/server.js';
import { call, forgeToken, login, scratchDir, type ApiResponse } from '../support/keyhold.js';

const ROOT_SECRET = 'Root-Secret-for-tests-2026';
const SECRET = 'Amber-Harbor-Secret-2';
const basic = (id: string, secret = SECRET) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

async function startWith(
  forwardAuth: Record<string, unknown>,
  loginThrottle: Record<string, unknown> = { baseDelay: 0 },
): Promise<{ server: ServerHandle; dataDir: string }> {
  const dir = scratchDir('forward-auth-api');
  const dataDir = join(dir, 'data');
  const emptyPlugins = scratchDir('no-plugins');
  writeFileSync(
    join(dir, 'keyhold.yaml'),
    YAML.stringify({
      listen: { host: '127.0.0.1', port: 0 },
      dataDir,
      hash: { memoryCost: 256, timeCost: 1 },
      plugins: { directory: emptyPlugins },
      forwardAuth,
      loginThrottle,
    }),
  );
  const server = await startServer({
    cwd: dir,
    env: { KEYHOLD_BOOTSTRAP: `root:${ROOT_SECRET}` },
    logger: pino({ level: 'silent' }),
    print: () => undefined,
  });
  return { server, dataDir };
}

describe('forwardAuth settings', () => {
  it('has defaults', () => {
    const config = loadConfig({ env: {}, cwd: scratchDir('cfg') });
    assert.deepEqual(config.forwardAuth, {
      realm: 'keyhold',
      headers: { entity: 'X-Keyhold-Entity', groups: 'X-Keyhold-Groups', capabilities: 'X-Keyhold-Capabilities' },
      rules: {},
      cache: { ttlMs: 30_000, maxEntries: 10_000 },
    });
  });

  it('reads the file, and the environment overrides it', () => {
    const cwd = scratchDir('cfg');
    writeFileSync(
      join(cwd, 'keyhold.yaml'),
      YAML.stringify({
        api: { trustedProxies: ['10.0.0.0/8'] },
        forwardAuth: {
          rules: { wiki: { groups: ['wiki'] }, admin: { capabilities: ['GLOBAL_ROOT'] } },
          headers: { groups: '' },
        },
      }),
    );
    const fromFile = loadConfig({ env: {}, cwd }).forwardAuth;
    assert.deepEqual(fromFile.rules, {
      wiki: { groups: ['wiki'], capabilities: [] },
      admin: { groups: [], capabilities: ['GLOBAL_ROOT'] },
    });
    assert.equal(fromFile.headers.groups, '');
    assert.deepEqual(loadConfig({ env: {}, cwd }).api, { trustedProxies: ['10.0.0.0/8'], clientAddressHeader: 'x-forwarded-for' });
    const env = {
      KEYHOLD_TRUSTED_PROXIES: '127.0.0.1, ::1',
      KEYHOLD_FORWARD_AUTH_CACHE_TTL: '0',
      KEYHOLD_CLIENT_ADDRESS_HEADER: 'X-Real-IP',
      KEYHOLD_FORWARD_AUTH_REALM: 'Intranet',
    };
    const fromEnv = loadConfig({ env, cwd });
    assert.deepEqual(
      [fromEnv.api.trustedProxies, fromEnv.forwardAuth.cache.ttlMs, fromEnv.api.clientAddressHeader, fromEnv.forwardAuth.realm],
      [['127.0.0.1', '::1'], 0, 'x-real-ip', 'Intranet'],
    );
  });

  it('names the key and the problem', () => {
    const cwd = scratchDir('cfg');
    const file = join(cwd, 'keyhold.yaml');
    const cases: [unknown, string, RegExp][] = [
      [{ api: { trustedProxies: ['proxy.example'] } }, 'api.trustedProxies', /"proxy.example" is not an IP address or a CIDR block/],
      [{ api: { trustedProxies: '10.0.0.0/40' } }, 'api.trustedProxies', /prefix length/],
      [{ api: { clientAddressHeader: 'forwarded' } }, 'api.clientAddressHeader', /one of x-forwarded-for, x-real-ip/],
      // Where they were before one list applied to every route: refused, saying where they went.
      [{ forwardAuth: { trustedProxies: ['10.0.0.1'] } }, 'forwardAuth.trustedProxies', /moved to api\.trustedProxies/],
      [{ forwardAuth: { clientAddressHeader: 'x-real-ip' } }, 'forwardAuth.clientAddressHeader', /moved to api\.clientAddressHeader/],
      [{ forwardAuth: { realm: 'say "hi"' } }, 'forwardAuth.realm', /without "/],
      [{ forwardAuth: { headers: { entity: 'X Entity' } } }, 'forwardAuth.headers.entity', /HTTP header name/],
      [{ forwardAuth: { headers: { user: 'X-User' } } }, 'forwardAuth.headers.user', /unknown key/],
      [
        { forwardAuth: { rules: { wiki: { group: ['wiki'] } } } },
        'forwardAuth.rules',
        /wiki\.group: unknown key \(did you mean "groups"\?\)/,
      ],
      [{ forwardAuth: { rules: { wiki: { groups: 'wiki' } } } }, 'forwardAuth.rules', /wiki\.groups: expected a list of group names/],
      [
        { forwardAuth: { rules: { wiki: { capabilities: ['ROOT'] } } } },
        'forwardAuth.rules',
        /wiki\.capabilities: expected a list of capabilities from GLOBAL_ROOT, .*got "ROOT"/,
      ],
      [{ forwardAuth: { rules: { 'bad name!': {} } } }, 'forwardAuth.rules', /rule name "bad name!"/],
      [{ forwardAuth: { cache: { ttl: '1h' } } }, 'forwardAuth.cache.ttl', /from 0ms to 10m/],
      [{ forwardAuth: { cache: { maxEntries: 0 } } }, 'forwardAuth.cache.maxEntries', /from 1 to 1000000/],
    ];
    for (const [settings, path, problem] of cases) {
      writeFileSync(file, YAML.stringify(settings));
      let error: unknown;
      try {
        loadConfig({ env: {}, cwd });
      } catch (err) {
        error = err;
      }
      assert.ok(error instanceof ConfigError, JSON.stringify(settings));
      assert.deepEqual([error.path, problem.test(error.problem)], [path, true], `${JSON.stringify(settings)}: ${error.problem}`);
    }
    assert.throws(() => loadConfig({ env: { KEYHOLD_FORWARD_AUTH_TRUSTED_PROXIES: '10.0.0.1' }, cwd: scratchDir('cfg') }), {
      path: 'KEYHOLD_FORWARD_AUTH_TRUSTED_PROXIES',
      problem: /moved to KEYHOLD_TRUSTED_PROXIES/,
    });
  });
});

describe('/v1/forward-auth without a proxy', () => {
  let server: ServerHandle;
  let dataDir: string;
  let root: string;
  const forward = (path: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<ApiResponse> =>
    call(server.url, method, path, { headers, ...(body !== undefined && { body }) });
  const api = async (method: string, path: string, body?: unknown) => {
    const response = await call(server.url, method, path, { token: root, ...(body !== undefined && { body }) });
    assert.ok(response.status < 300, `${method} ${path}: ${response.text}`);
  };
  const status = async (path: string, headers: Record<string, string> = {}) => (await forward(path, headers)).status;

  before(async () => {
    ({ server, dataDir } = await startWith({
      realm: 'Intranet',
      rules: { staff: { groups: ['staff', 'ops,eu'] }, lockers: { capabilities: ['LOCK_ENTITY'] } },
      headers: { groups: 'X-Groups', capabilities: '' },
    }));
    root = await login(server.url, 'root', ROOT_SECRET);
    for (const name of ['staff', 'ops,eu']) await api('POST', '/v1/groups', { name });
    for (const id of ['alice', 'jürgen']) await api('POST', '/v1/entities', { id, secret: SECRET });
    await api('PUT', '/v1/groups/staff/members/alice');
    await api('PUT', `/v1/groups/${encodeURIComponent('ops,eu')}/members/${encodeURIComponent('jürgen')}`);
  });

  after(() => server?.close());

  it('answers 200 with the identity headers as configured: renamed, left out, names encoded to fit a header', async () => {
    const response = await fetch(`${server.url}/v1/forward-auth`, { headers: { authorization: basic('jürgen') } });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), '');
    assert.equal(response.headers.get('x-keyhold-entity'), 'j%C3%BCrgen');
    assert.equal(response.headers.get('x-groups'), 'ops%2Ceu');
    assert.equal(response.headers.get('x-keyhold-capabilities'), null);
    assert.equal(response.headers.get('x-keyhold-groups'), null);
  });

  it('answers 401 with the configured realm, the same for an unknown id and a wrong secret', async () => {
    const wrong = await forward('/v1/forward-auth', { authorization: basic('alice', 'nope') });
    const unknown = await forward('/v1/forward-auth', { authorization: basic('nobody') });
    assert.deepEqual([wrong.status, wrong.body], [401, { code: 'KH_ERR_AUTH_FAILED', message: 'unknown entity or wrong secret' }]);
    assert.deepEqual([unknown.status, unknown.body], [wrong.status, wrong.body]);
    const response = await fetch(`${server.url}/v1/forward-auth`);
    assert.equal(response.headers.get('www-authenticate'), 'Basic realm="Intranet", charset="UTF-8"');
  });

  it('takes rules from the query: named, groups (any of), capabilities (all of), together (all must hold)', async () => {
    assert.equal(await status('/v1/forward-auth?rule=staff', { authorization: basic('alice') }), 200);
    assert.equal(await status('/v1/forward-auth?rule=staff', { authorization: basic('jürgen') }), 200, 'the other group of the rule');
    assert.equal(await status('/v1/forward-auth?rule=lockers', { authorization: basic('alice') }), 403);
    assert.equal(
      await status('/v1/forward-auth?rule=lockers', { authorization: basic('root', ROOT_SECRET) }),
      200,
      'GLOBAL_ROOT holds every capability',
    );
    assert.equal(await status('/v1/forward-auth?group=nope&group=staff', { authorization: basic('alice') }), 200);
    assert.equal(await status('/v1/forward-auth?group=nope', { authorization: basic('alice') }), 403);
    assert.equal(
      await status('/v1/forward-auth?capability=LOCK_ENTITY&capability=UNLOCK_ENTITY', { authorization: basic('root', ROOT_SECRET) }),
      200,
    );
    assert.equal(await status('/v1/forward-auth?rule=staff&capability=LOCK_ENTITY', { authorization: basic('alice') }), 403);
    const forbidden = await forward('/v1/forward-auth?rule=staff', { authorization: basic('root', ROOT_SECRET) });
    assert.equal(forbidden.body.code, 'KH_ERR_FORBIDDEN');
    assert.doesNotMatch(forbidden.text, /staff|ops/, 'the answer names no group: Traefik and Caddy show it to the end user');
  });

  it('refuses an unknown rule or a query it does not know with 400, saying which', async () => {
    const unknown = await forward('/v1/forward-auth?rule=wiki', { authorization: basic('alice') });
    assert.deepEqual([unknown.status, unknown.body.code], [400, 'KH_ERR_INVALID_INPUT']);
    assert.match(unknown.body.message, /no rule "wiki" in forwardAuth\.rules; the rules are staff, lockers/);
    for (const query of ['bogus=1', 'capability=ROOT', 'rule=bad%20name', `group=${'g'.repeat(200)}`, 'rule=a&rule=b', 'group=']) {
      const response = await forward(`/v1/forward-auth?${query}`, { authorization: basic('alice') });
      assert.deepEqual([response.status, response.body?.code], [400, 'KH_ERR_INVALID_INPUT'], query);
    }
  });

  it("serves Envoy's form: the original path and query appended are ignored, the rule comes in X-Keyhold-Rule", async () => {
    assert.equal(await status('/v1/forward-auth/some/page?bogus=1&x=%ZZ', { authorization: basic('jürgen') }), 200);
    assert.equal(await status('/v1/forward-auth/', { authorization: basic('jürgen') }), 200);
    assert.equal(await status('/v1/forward-auth/page', { authorization: basic('root', ROOT_SECRET), 'x-keyhold-rule': 'staff' }), 403);
    assert.equal(await status('/v1/forward-auth/page', { authorization: basic('alice'), 'x-keyhold-rule': 'staff' }), 200);
    assert.equal(await status('/v1/forward-auth/page', { authorization: basic('alice'), 'x-keyhold-rule': 'wiki' }), 400);
    assert.equal(
      await status('/v1/forward-auth?rule=staff', { authorization: basic('root', ROOT_SECRET), 'x-keyhold-rule': 'lockers' }),
      403,
      'the header does not replace the query',
    );
  });

  it('serves every method and ignores any body', async () => {
    for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'PROPFIND', 'MKCOL']) {
      assert.equal((await forward('/v1/forward-auth', { authorization: basic('alice') }, method)).status, 200, method);
      assert.equal(
        (await forward('/v1/forward-auth/some/file', { authorization: basic('alice') }, method)).status,
        200,
        `${method}, Envoy's form`,
      );
    }
    assert.equal(
      (await forward('/v1/forward-auth', { authorization: basic('alice'), 'content-type': 'text/plain' }, 'POST', 'hello')).status,
      200,
    );
    assert.equal(
      (await forward('/v1/forward-auth/upload', { authorization: basic('alice'), 'content-type': 'application/json' }, 'PUT', '{"not json'))
        .status,
      200,
    );
    assert.equal(
      (
        await forward(
          '/v1/forward-auth',
          { authorization: basic('alice'), 'content-type': 'multipart/form-data; boundary=x' },
          'POST',
          '--x--',
        )
      ).status,
      200,
    );
  });

  it('takes a token: valid → 200; expired, forged or of a locked entity → 401 with the challenge', async () => {
    await api('POST', '/v1/entities', { id: 'tom', secret: SECRET });
    await api('PUT', '/v1/groups/staff/members/tom');
    const token = await login(server.url, 'tom', SECRET);
    const ok = await fetch(`${server.url}/v1/forward-auth?rule=staff`, { headers: { authorization: `Bearer ${token}` } });
    assert.deepEqual([ok.status, ok.headers.get('x-keyhold-entity'), ok.headers.get('x-groups')], [200, 'tom', 'staff']);
    const now = Math.floor(Date.now() / 1000);
    const expired = await forgeToken(dataDir, { sub: 'tom', caps: [], iat: now - 3600, exp: now - 60 });
    for (const bad of [expired, `${token.slice(0, -4)}AAAA`, 'not-a-token']) {
      const response = await fetch(`${server.url}/v1/forward-auth`, { headers: { authorization: `Bearer ${bad}` } });
      assert.equal(response.status, 401);
      assert.match(response.headers.get('www-authenticate') ?? '', /^Basic realm="Intranet"/);
    }
    await api('POST', '/v1/entities/tom/lock');
    assert.equal(await status('/v1/forward-auth', { authorization: `Bearer ${token}` }), 401);
    assert.equal(await status('/v1/forward-auth', { authorization: basic('tom') }), 401, 'a locked entity is refused like a wrong secret');
  });

  it('never answers 5xx, whatever the sub-request carries', async () => {
    const authorizations = [
      '',
      'Basic',
      'Basic ====',
      `Basic ${'A'.repeat(8000)}`,
      'Bearer a b',
      'Bearer \u00ff',
      `Basic ${Buffer.from('a:b\u0000c').toString('base64')}`,
      `Basic ${Buffer.from(`${'x'.repeat(300)}:y`).toString('base64')}`,
      `Basic ${Buffer.from(`alice:${'s'.repeat(5000)}`).toString('base64')}`,
      'Negotiate abc',
    ];
    const paths = [
      '/v1/forward-auth',
      '/v1/forward-auth?group=%00',
      '/v1/forward-auth?group=%ED%A0%80',
      '/v1/forward-auth?capability=',
      '/v1/forward-auth/%ZZ',
      '/v1/forward-auth?rule=staff&rule=staff',
    ];
    for (const authorization of authorizations) {
      for (const path of paths) {
        const response = await forward(path, authorization === '' ? {} : { authorization: authorization.replace(/[^\x20-\xff]/g, '') });
        assert.ok(
          response.status < 500 && response.body?.code !== 'KH_ERR_INTERNAL',
          `${path} with ${authorization.slice(0, 30)}: ${response.status} ${response.text}`,
        );
      }
    }
  });
});

describe('/v1/forward-auth with the cache off', () => {
  let server: ServerHandle;
  before(async () => ({ server } = await startWith({ cache: { ttl: 0 } })));
  after(() => server?.close());

  it('checks every time and reports no cache lookups', async () => {
    for (let i = 0; i < 3; i++)
      assert.equal(
        (await call(server.url, 'GET', '/v1/forward-auth', { headers: { authorization: basic('root', ROOT_SECRET) } })).status,
        200,
      );
    const metrics = (await call(server.url, 'GET', '/metrics')).text;
    assert.match(metrics, /keyhold_forward_auth_decisions_total\{rule="\(none\)",decision="allowed"\} 3/);
    assert.doesNotMatch(metrics, /keyhold_forward_auth_cache_lookups_total\{/);
  });
});

describe('/v1/forward-auth behind the login throttle', () => {
  let server: ServerHandle;
  before(async () => ({ server } = await startWith({ cache: { ttl: 0 } }, { baseDelay: '60s' })));
  after(() => server?.close());

  it('refuses the right secret while a wrong one is being paid for, like the API login, and counts why', async () => {
    const answer = async (secret: string) =>
      (await call(server.url, 'GET', '/v1/forward-auth', { headers: { authorization: basic('root', secret) } })).status;
    assert.equal(await answer('wrong'), 401);
    assert.equal(await answer(ROOT_SECRET), 401, 'the delay after the failure holds for web logins too');
    const metrics = (await call(server.url, 'GET', '/metrics')).text;
    assert.match(metrics, /keyhold_auth_failures_total\{reason="wrong_secret"\} 1/);
    assert.match(metrics, /keyhold_auth_failures_total\{reason="throttled"\} 1/);
  });
});
