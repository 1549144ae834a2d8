// Verify plugins through real servers, real plugin processes and the real API: a plugin that
// claims an entity decides its login (replace mode); only its verify call ever carries the
// presented secret (a spy on every hook, with and without verify, never sees it); a refusal, a
// crash and a timeout all refuse the login with the one KH_ERR_AUTH_FAILED, the reason only in
// the log and metrics; the bootstrap root's break-glass still lets it in; verifyFallback: builtin
// checks the built-in hash instead.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import YAML from 'yaml';
import { startServer, type ServerHandle } from '../../src/server.js';
import { pluginDir } from '../fixtures/plugin-host.js';
import { call, capturingLogger, killChildren, login, scratchDir, serverEnv } from '../support/keyhold.js';

after(killChildren);

const ROOT = 'admin0';
const ROOT_SECRET = 'root-secret-Kq3';
/** What the directory behind the verify plugin holds for alice; never set as her keyhold secret. */
const DIRECTORY_SECRET = 'directory-pass-Zx81-unique';
const LOCAL_SECRET = 'local-secret-Pw55';

interface Server {
  handle: ServerHandle;
  records: Record<string, unknown>[];
}

/** A server with the hook spy and `verify-spy` configured with `entry`, root bootstrapped, alice created with LOCAL_SECRET. */
async function serverWith(t: TestContext, entry: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Promise<Server> {
  const dir = scratchDir('verify');
  const configFile = join(dir, 'keyhold.yaml');
  writeFileSync(configFile, YAML.stringify({ plugins: { pingInterval: 0, plugins: { 'verify-spy': entry } } }));
  const plugins = pluginDir(t, { 'hook-spy': 'hook-spy', 'verify-spy': 'verify-spy' });
  const { logger, records } = capturingLogger('info');
  const handle = await startServer({
    env: serverEnv(join(dir, 'data'), {
      KEYHOLD_PLUGIN_DIR: plugins,
      KEYHOLD_CONFIG: configFile,
      KEYHOLD_BOOTSTRAP: `${ROOT}:${ROOT_SECRET}`,
      ...env,
    }),
    logger,
  });
  t.after(() => handle.close());
  // The root is the default exemption of a verify plugin: its built-in secret lets it in.
  const token = await login(handle.url, ROOT, ROOT_SECRET);
  const created = await call(handle.url, 'POST', '/v1/entities', { token, body: { id: 'alice', secret: LOCAL_SECRET } });
  assert.equal(created.status, 201, created.text);
  return { handle, records };
}

async function loginAs(url: string, id: string, secret: string) {
  const response = await call(url, 'POST', '/v1/auth/token', { body: { id, secret } });
  return { status: response.status, code: response.body?.code as string | undefined, message: response.body?.message };
}

async function failures(url: string, reason: string): Promise<number> {
  const metrics = await call(url, 'GET', '/metrics');
  return Number(new RegExp(`^keyhold_auth_failures_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(metrics.text)?.[1]);
}

const REFUSED = { status: 401, code: 'KH_ERR_AUTH_FAILED', message: 'unknown entity or wrong secret' };

describe('verify plugins', () => {
  it('replace mode: the plugin decides a claimed login, and only its verify call ever sees the presented secret', async (t) => {
    const { handle, records } = await serverWith(t, { verifyMode: 'replace', config: { accept: DIRECTORY_SECRET, spy: true } });
    assert.equal((await loginAs(handle.url, 'alice', DIRECTORY_SECRET)).status, 200, 'the directory secret logs alice in');
    // The built-in hash no longer decides for her: her keyhold secret is refused, as is a wrong one, all alike.
    assert.deepEqual(await loginAs(handle.url, 'alice', LOCAL_SECRET), REFUSED);
    assert.deepEqual(await loginAs(handle.url, 'alice', 'wrong-secret-Yy7'), REFUSED);
    assert.deepEqual(await loginAs(handle.url, 'nobody', DIRECTORY_SECRET), REFUSED);
    assert.equal(await failures(handle.url, 'verify_refused'), 2);
    assert.equal(await failures(handle.url, 'unknown'), 1);

    // The verify call got the secret (its hash is logged); nothing else did: no hook of either spy, no log line.
    const hash = createHash('sha256').update(DIRECTORY_SECRET).digest('hex');
    assert.ok(
      records.some((r) => r.plugin === 'verify-spy' && r.msg === 'verify called' && r.entity === 'alice' && r.secretSha256 === hash),
    );
    const spied = records.filter((r) => typeof r.spied === 'string');
    assert.ok(
      spied.some((r) => r.plugin === 'hook-spy' && String(r.spied).includes('"preAuthCheck"')),
      'the spy saw the logins',
    );
    assert.ok(
      spied.some((r) => r.plugin === 'verify-spy' && String(r.spied).includes('"postAuthCheck"')),
      "the verify plugin's own hooks saw them",
    );
    for (const secret of [DIRECTORY_SECRET, 'wrong-secret-Yy7', ROOT_SECRET])
      assert.ok(!JSON.stringify(records).includes(secret), `no hook call and no log line holds the presented secret ${secret}`);
    // The refusal's reason is in the log, never in the answer.
    assert.ok(records.some((r) => r.reason === 'verify_refused' && r.entity === 'alice'));
  });

  it('claims only the entities its rules name: the others keep the built-in check', async (t) => {
    const { handle } = await serverWith(t, { config: { accept: DIRECTORY_SECRET, claims: ['group:directory-users'] } });
    assert.equal((await loginAs(handle.url, 'alice', LOCAL_SECRET)).status, 200);
    const token = await login(handle.url, ROOT, ROOT_SECRET);
    assert.equal((await call(handle.url, 'POST', '/v1/groups', { token, body: { name: 'directory-users' } })).status, 201);
    assert.equal((await call(handle.url, 'PUT', '/v1/groups/directory-users/members/alice', { token })).status, 200);
    assert.deepEqual(await loginAs(handle.url, 'alice', LOCAL_SECRET), REFUSED);
    assert.equal((await loginAs(handle.url, 'alice', DIRECTORY_SECRET)).status, 200);
  });

  it('the login throttle runs first: a throttled attempt reaches no verify plugin', async (t) => {
    // A failure delays the next attempt from the same address by a minute (the tests' servers otherwise have no delays).
    const { handle, records } = await serverWith(
      t,
      { config: { accept: DIRECTORY_SECRET } },
      { KEYHOLD_LOGIN_THROTTLE_BASE_DELAY: '60000' },
    );
    assert.deepEqual(await loginAs(handle.url, 'alice', 'wrong-secret-Yy7'), REFUSED);
    assert.deepEqual(await loginAs(handle.url, 'alice', DIRECTORY_SECRET), REFUSED, 'throttled, even with the right secret');
    assert.equal(await failures(handle.url, 'throttled'), 1);
    assert.equal(records.filter((r) => r.msg === 'verify called').length, 1, 'only the first attempt was verified');
  });

  for (const fault of ['crash', 'hang'] as const) {
    it(`a verify plugin that ${fault === 'crash' ? 'crashes' : 'does not answer in time'} fails the login closed; the root's break-glass still works`, async (t) => {
      const { handle, records } = await serverWith(t, { timeout: '300ms', config: { accept: DIRECTORY_SECRET, fault } });
      assert.deepEqual(await loginAs(handle.url, 'alice', DIRECTORY_SECRET), REFUSED);
      assert.equal(await failures(handle.url, 'verify_unavailable'), 1);
      assert.ok(records.some((r) => r.reason === 'verify_unavailable' && (r.detail as { plugin?: string }).plugin === 'verify-spy'));
      await login(handle.url, ROOT, ROOT_SECRET);
    });
  }

  it('verifyFallback: builtin checks the built-in hash while the verify plugin cannot answer', async (t) => {
    const { handle } = await serverWith(t, { verifyFallback: 'builtin', config: { accept: DIRECTORY_SECRET, fault: 'crash' } });
    assert.equal((await loginAs(handle.url, 'alice', LOCAL_SECRET)).status, 200);
  });

  it('a verify plugin with nobody exempt is not loaded (it could lock everyone out)', async (t) => {
    await assert.rejects(
      serverWith(t, { exempt: [], config: { accept: DIRECTORY_SECRET } }),
      /verify-spy .*it verifies secrets and its settings exempt nobody \(exempt: \[\]\).*allowLockout: true/,
    );
  });
});
