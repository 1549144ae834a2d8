// Forward authentication through a real nginx: auth_request to a real keyhold server (with
// fail2lock and a plugin that logs the client address its AuthCheck hook is given) in front of a
// small upstream that echoes the headers it received. nginx reaches keyhold from 127.0.0.2
// (proxy_bind), the one trusted proxy, while clients reach nginx from 127.0.0.1, so the address
// keyhold uses shows whether it took the forwarded one. Skipped, saying so, without nginx.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import { startServer, type ServerHandle } from '../../src/server.js';
import { findNginx, NGINX_MISSING, startNginx, type Nginx } from '../../src/testing/nginx.js';
import { fixture } from '../fixtures/plugin-host.js';
import { call, capturingLogger, login, scratchDir } from '../support/keyhold.js';
import { repoPath } from '../support/plugin-projects.js';

const ROOT_SECRET = 'Root-Secret-for-tests-2026';
const SECRET = 'Velvet-Compass-Secret-7';
const ALLOWED_FAILS = 3;
const nginxBinary = findNginx();

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

/** The upstream: answers every request with the path and headers it received. */
async function echoUpstream(): Promise<{ server: Server; port: number; hits: () => number }> {
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path: req.url, headers: req.headers }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port, hits: () => hits };
}

/** The protected locations as docs/forward-auth.md shows them: `auth` is the internal location of the sub-request. */
function nginxHttp(keyholdPort: number, upstreamPort: number) {
  return (port: number) => {
    const subRequest = (location: string, query: string) => `
    location = ${location} {
      internal;
      proxy_pass http://keyhold/v1/forward-auth${query};
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_bind 127.0.0.2;
    }`;
    const protectedBy = (prefix: string, auth: string) => `
    location ${prefix} {
      auth_request ${auth};
      auth_request_set $keyhold_entity $upstream_http_x_keyhold_entity;
      auth_request_set $keyhold_groups $upstream_http_x_keyhold_groups;
      auth_request_set $keyhold_capabilities $upstream_http_x_keyhold_capabilities;
      proxy_set_header X-Keyhold-Entity $keyhold_entity;
      proxy_set_header X-Keyhold-Groups $keyhold_groups;
      proxy_set_header X-Keyhold-Capabilities $keyhold_capabilities;
      proxy_pass http://127.0.0.1:${upstreamPort};
    }`;
    return `
  upstream keyhold { server 127.0.0.1:${keyholdPort}; keepalive 8; }
  server {
    listen 127.0.0.1:${port};
    ${subRequest('/_keyhold', '')}
    ${subRequest('/_keyhold_staff', '?rule=staff')}
    ${protectedBy('/app/', '/_keyhold')}
    ${protectedBy('/staff/', '/_keyhold_staff')}
  }`;
  };
}

describe('forward auth through nginx', { skip: nginxBinary ? false : NGINX_MISSING }, () => {
  let server: ServerHandle | undefined;
  let nginx: Nginx | undefined;
  let upstream: Awaited<ReturnType<typeof echoUpstream>> | undefined;
  let root: string;
  const { logger: serverLogger, records: logs } = capturingLogger('info');

  const api = async (method: string, path: string, body?: unknown) => {
    const response = await call(server!.url, method, path, { token: root, ...(body !== undefined && { body }) });
    assert.ok(response.status < 300, `${method} ${path}: ${response.status} ${response.text}`);
    return response;
  };
  const through = (path: string, headers: Record<string, string> = {}) => fetch(`${nginx!.url}${path}`, { headers });
  /** A keyhold counter's value now (0 when it has no such series yet). */
  const metric = async (series: string) => {
    const text = (await call(server!.url, 'GET', '/metrics')).text;
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line ? Number(line.slice(series.length + 1)) : 0;
  };
  const misses = () => metric('keyhold_forward_auth_cache_lookups_total{rule="(none)",result="miss"}');
  const preAuthChecks = (entity: string) => logs.filter((r) => r.plugin === 'auth-address' && r.entity === entity);

  async function createEntity(id: string, groups: string[] = []): Promise<void> {
    await api('POST', '/v1/entities', { id, secret: SECRET });
    for (const group of groups) await api('PUT', `/v1/groups/${group}/members/${id}`);
  }

  before(async () => {
    const dir = scratchDir('forward-auth-nginx');
    const pluginDir = join(dir, 'plugins');
    mkdirSync(pluginDir);
    symlinkSync(repoPath('examples/fail2lock/dist/fail2lock.js'), join(pluginDir, 'fail2lock'));
    symlinkSync(fixture('auth-address'), join(pluginDir, 'auth-address'));
    const config = {
      listen: { host: '127.0.0.1', port: 0 },
      dataDir: join(dir, 'data'),
      hash: { memoryCost: 256, timeCost: 1 },
      plugins: { directory: pluginDir, plugins: { fail2lock: { config: { allowedFails: ALLOWED_FAILS, interval: '10m' } } } },
      // A TTL far beyond the test: every change seen below is seen through the store, not by expiry.
      api: { trustedProxies: ['127.0.0.2'] },
      forwardAuth: { rules: { staff: { groups: ['staff'] } }, cache: { ttl: '10m' } },
      // Failures are counted but cost no delay: the cases below log in right after a wrong secret.
      loginThrottle: { baseDelay: 0 },
    };
    writeFileSync(join(dir, 'keyhold.yaml'), YAML.stringify(config));
    server = await startServer({
      cwd: dir,
      env: { KEYHOLD_BOOTSTRAP: `root:${ROOT_SECRET}` },
      logger: serverLogger,
      print: () => undefined,
    });
    root = await login(server.url, 'root', ROOT_SECRET);
    upstream = await echoUpstream();
    nginx = await startNginx(nginxBinary!, { http: nginxHttp(Number(new URL(server.url).port), upstream.port) });
    for (const group of ['staff', 'readers']) await api('POST', '/v1/groups', { name: group });
    await api('POST', '/v1/groups/readers/capabilities', { action: 'add', value: 'LOCK_ENTITY' });
  });

  after(async () => {
    await nginx?.stop();
    upstream?.server.closeAllConnections();
    upstream?.server.close();
    await server?.close();
  });

  it('no credentials: 401 with the Basic challenge, and the upstream is not reached', async () => {
    const before = upstream!.hits();
    const response = await through('/app/page');
    assert.equal(response.status, 401, nginx!.errorLog());
    assert.equal(response.headers.get('www-authenticate'), 'Basic realm="keyhold", charset="UTF-8"');
    assert.equal(upstream!.hits(), before);
  });

  it('a wrong secret: 401 with the challenge', async () => {
    await createEntity('walter');
    const response = await through('/app/page', { authorization: basic('walter', 'not-the-secret') });
    assert.equal(response.status, 401);
    assert.match(response.headers.get('www-authenticate') ?? '', /^Basic realm="keyhold"/);
    assert.equal((await through('/app/page', { authorization: basic('nobody-at-all', SECRET) })).status, 401, 'an unknown id alike');
  });

  it('the right secret: 200, and the upstream gets the identity headers (not the ones the client sent)', async () => {
    await createEntity('alice', ['readers']);
    const response = await through('/app/page?x=1', {
      authorization: basic('alice', SECRET),
      'x-keyhold-entity': 'root',
      'x-keyhold-capabilities': 'GLOBAL_ROOT',
    });
    assert.equal(response.status, 200, nginx!.errorLog());
    const echoed = (await response.json()) as { path: string; headers: Record<string, string> };
    assert.equal(echoed.path, '/app/page?x=1');
    assert.deepEqual(
      {
        entity: echoed.headers['x-keyhold-entity'],
        groups: echoed.headers['x-keyhold-groups'],
        capabilities: echoed.headers['x-keyhold-capabilities'],
      },
      { entity: 'alice', groups: 'readers', capabilities: 'LOCK_ENTITY' },
    );
  });

  it("uses the client address nginx forwarded, not the proxy's nor one the client wrote, in its log and for AuthCheck hooks", async () => {
    await createEntity('xavier');
    const spoofed = { 'x-forwarded-for': '203.0.113.9' };
    assert.equal((await through('/app/page', { authorization: basic('xavier', 'wrong'), ...spoofed })).status, 401);
    assert.equal((await through('/app/page', { authorization: basic('xavier', SECRET), ...spoofed })).status, 200);
    assert.deepEqual(
      preAuthChecks('xavier').map((r) => r.clientAddress),
      ['127.0.0.1', '127.0.0.1'],
    );
    const refusal = logs.find((r) => r.component === 'forward-auth' && r.entity === 'xavier');
    assert.deepEqual([refusal?.decision, refusal?.client], ['unauthenticated', '127.0.0.1']);
    // Straight to keyhold from an untrusted peer, the header is the client's own word: ignored.
    const direct = await call(server!.url, 'GET', '/v1/forward-auth', {
      headers: { authorization: basic('xavier', 'wrong'), 'x-forwarded-for': '198.51.100.4' },
    });
    assert.equal(direct.status, 401);
    assert.equal(preAuthChecks('xavier').at(-1)!.clientAddress, '127.0.0.1');
  });

  it('a group rule not met: 403; met: 200', async () => {
    await createEntity('bob', ['staff']);
    await createEntity('eve');
    assert.equal((await through('/staff/page', { authorization: basic('eve', SECRET) })).status, 403);
    assert.equal((await through('/staff/page', { authorization: basic('bob', SECRET) })).status, 200);
    assert.equal((await through('/app/page', { authorization: basic('eve', SECRET) })).status, 200, 'no rule: any entity');
  });

  it('a bearer token: 200 with its identity; a revoked one: 401', async () => {
    await createEntity('tara', ['readers']);
    const token = await login(server!.url, 'tara', SECRET);
    const response = await through('/app/page', { authorization: `Bearer ${token}` });
    assert.equal(response.status, 200);
    assert.equal(((await response.json()) as { headers: Record<string, string> }).headers['x-keyhold-entity'], 'tara');
    assert.equal((await call(server!.url, 'POST', '/v1/auth/logout', { token })).status, 204);
    assert.equal((await through('/app/page', { authorization: `Bearer ${token}` })).status, 401);
  });

  it('a page of many sub-requests costs one AuthCheck', async () => {
    await createEntity('paula');
    const missesBefore = await misses();
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => through(`/app/asset-${i}.css`, { authorization: basic('paula', SECRET) })),
    );
    assert.deepEqual(
      answers.map((r) => r.status),
      Array(12).fill(200),
    );
    assert.equal(await misses(), missesBefore + 1);
    assert.equal(preAuthChecks('paula').length, 1);
  });

  it('a locked entity: 401 at once when the lock went through keyhold, its credentials cached or not', async () => {
    await createEntity('dave');
    for (let i = 0; i < 2; i++) assert.equal((await through('/app/page', { authorization: basic('dave', SECRET) })).status, 200);
    assert.equal(preAuthChecks('dave').length, 1, 'the second answer came from the cache');
    await api('POST', '/v1/entities/dave/lock');
    assert.equal((await through('/app/page', { authorization: basic('dave', SECRET) })).status, 401);
    await api('POST', '/v1/entities/dave/unlock');
    assert.equal((await through('/app/page', { authorization: basic('dave', SECRET) })).status, 200);
  });

  it('a secret change or a lost group ends cached credentials at once', async () => {
    await createEntity('sam', ['staff']);
    assert.equal((await through('/staff/page', { authorization: basic('sam', SECRET) })).status, 200);
    await api('DELETE', '/v1/groups/staff/members/sam');
    assert.equal((await through('/staff/page', { authorization: basic('sam', SECRET) })).status, 403);
    await api('PUT', '/v1/entities/sam/secret', { secret: 'Another-Secret-of-Sam-9' });
    assert.equal((await through('/app/page', { authorization: basic('sam', SECRET) })).status, 401);
    assert.equal((await through('/app/page', { authorization: basic('sam', 'Another-Secret-of-Sam-9') })).status, 200);
  });

  it(`fail2lock: ${ALLOWED_FAILS} wrong secrets through nginx lock the entity out, cached right secret included`, async () => {
    await createEntity('carol');
    assert.equal((await through('/app/page', { authorization: basic('carol', SECRET) })).status, 200);
    for (let i = 0; i < ALLOWED_FAILS; i++)
      assert.equal((await through('/app/page', { authorization: basic('carol', `wrong-${i}`) })).status, 401);
    assert.equal((await through('/app/page', { authorization: basic('carol', SECRET) })).status, 401);
    assert.ok(
      logs.some((r) => r.plugin === 'fail2lock' && r.entity === 'carol' && r.fails === ALLOWED_FAILS),
      'fail2lock refused it',
    );
    // The operator's reset (`keyhold plugin state fail2lock delete carol`) lets it in again.
    assert.equal((await api('DELETE', '/v1/plugins/fail2lock/state/carol')).status, 204);
    assert.equal((await through('/app/page', { authorization: basic('carol', SECRET) })).status, 200);
  });

  it('counts decisions and cache hits per rule', async () => {
    assert.ok((await metric('keyhold_forward_auth_decisions_total{rule="staff",decision="forbidden"}')) >= 1);
    assert.ok((await metric('keyhold_forward_auth_decisions_total{rule="(none)",decision="unauthenticated"}')) >= 1);
    assert.ok((await metric('keyhold_forward_auth_cache_lookups_total{rule="(none)",result="hit"}')) >= 11);
  });
});
