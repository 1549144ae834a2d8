// Break-glass through real servers and the real API: a login policy plugin that refuses or fails
// every login still lets the bootstrap root in (also after a restart, from the id recorded at
// bootstrap), nobody else; a plugin that would lock every login out with nobody exempt stops the
// start, unless the operator accepts the risk in writing.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { pino } from 'pino';
import YAML from 'yaml';
import { startServer, type ServerHandle } from '../../src/server.js';
import { pluginDir } from '../fixtures/plugin-host.js';
import { call, killChildren, login, runCli, scratchDir, serverEnv } from '../support/keyhold.js';

after(killChildren);

const ROOT = 'admin0';

interface Site {
  dataDir: string;
  configFile: string;
  env(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
}

/** A data directory, and the environment of a server with the deny-logins plugin configured with `entry`. */
function site(t: TestContext, entry: Record<string, unknown>): Site {
  const dir = scratchDir('break-glass');
  const configFile = join(dir, 'keyhold.yaml');
  writeFileSync(configFile, YAML.stringify({ plugins: { pingInterval: 0, plugins: { 'deny-logins': entry } } }));
  const plugins = pluginDir(t, { 'deny-logins': 'deny-logins' });
  const dataDir = join(dir, 'data');
  return {
    dataDir,
    configFile,
    env: (extra = {}) => serverEnv(dataDir, { KEYHOLD_PLUGIN_DIR: plugins, KEYHOLD_CONFIG: configFile, ...extra }),
  };
}

async function start(t: TestContext, env: NodeJS.ProcessEnv): Promise<ServerHandle> {
  const handle = await startServer({ env, logger: pino({ level: 'silent' }) });
  t.after(() => handle.close());
  return handle;
}

/** The error of a start that must be refused; a server that starts anyway is closed again, so that the failing test ends. */
async function refusedStart(env: NodeJS.ProcessEnv): Promise<Error> {
  try {
    const handle = await startServer({ env, logger: pino({ level: 'silent' }) });
    await handle.close();
  } catch (err) {
    return err as Error;
  }
  return assert.fail('the server started');
}

/** Creates `id` (with `secret`) as the root; the plugin only hooks AuthCheck, so this works. */
async function createEntity(url: string, token: string, id: string, secret: string): Promise<void> {
  const created = await call(url, 'POST', '/v1/entities', { token, body: { id, secret } });
  assert.equal(created.status, 201, created.text);
}

const loginStatus = async (url: string, id: string, secret: string) => {
  const response = await call(url, 'POST', '/v1/auth/token', { body: { id, secret } });
  return {
    status: response.status,
    code: response.body?.code as string | undefined,
    message: response.body?.message as string | undefined,
  };
};

describe('break-glass', () => {
  it('a fail-closed AuthCheck plugin that refuses every login: the bootstrap root still logs in, nobody else; also after a restart', async (t) => {
    const { dataDir, env } = site(t, {});
    const first = await start(t, env({ KEYHOLD_BOOTSTRAP: `${ROOT}:root-secret` }));
    const token = await login(first.url, ROOT, 'root-secret');
    await createEntity(first.url, token, 'alice', 'alice-secret');
    const alice = await loginStatus(first.url, 'alice', 'alice-secret');
    // A veto of a login reaches the client as every refused login does (the reason is in the log).
    assert.deepEqual([alice.status, alice.code], [401, 'KH_ERR_AUTH_FAILED']);
    const metrics = await call(first.url, 'GET', '/metrics');
    assert.match(metrics.text, /^keyhold_auth_failures_total\{reason="plugin_veto"\} 1$/m);
    assert.match(metrics.text, /^keyhold_plugin_exempt_skips_total\{plugin="deny-logins",hook="preAuthCheck"\} 1$/m);
    await first.close();

    // The root's id was recorded at bootstrap: a restart without KEYHOLD_BOOTSTRAP still exempts it.
    const second = await start(t, serverEnv(dataDir, { ...env(), KEYHOLD_BOOTSTRAP: undefined }));
    await login(second.url, ROOT, 'root-secret');
    assert.equal((await loginStatus(second.url, 'alice', 'alice-secret')).status, 401);
  });

  it('a plugin that fails on every login: the root still logs in, others get its failure', async (t) => {
    const { env } = site(t, { config: { fault: 'throw' } });
    const server = await start(t, env({ KEYHOLD_BOOTSTRAP: `${ROOT}:root-secret` }));
    const token = await login(server.url, ROOT, 'root-secret');
    await createEntity(server.url, token, 'alice', 'alice-secret');
    const alice = await loginStatus(server.url, 'alice', 'alice-secret');
    assert.deepEqual([alice.status, alice.code], [502, 'KH_ERR_PLUGIN_FAILED']);
  });

  it('an explicit exempt list replaces the default: the listed entity gets in, the root does not', async (t) => {
    const { env } = site(t, { exempt: ['alice'] });
    // alice is made before the plugin could refuse her: by an earlier start without the plugin.
    const bootstrap = await start(t, env({ KEYHOLD_BOOTSTRAP: `${ROOT}:root-secret`, KEYHOLD_PLUGIN_DIR: scratchDir('no-plugins') }));
    await createEntity(bootstrap.url, await login(bootstrap.url, ROOT, 'root-secret'), 'alice', 'alice-secret');
    await bootstrap.close();
    const server = await start(t, env());
    await login(server.url, 'alice', 'alice-secret');
    assert.equal((await loginStatus(server.url, ROOT, 'root-secret')).code, 'KH_ERR_AUTH_FAILED');
  });

  it('refuses to start when the plugin exempts nobody, naming the plugin and the two ways out', async (t) => {
    const { env } = site(t, { exempt: [] });
    assert.match(
      (await refusedStart(env({ KEYHOLD_BOOTSTRAP: `${ROOT}:root-secret` }))).message,
      /deny-logins .*it hooks preAuthCheck and its settings exempt nobody \(exempt: \[\]\), so if it breaks or refuses every login nobody can log in to fix it; exempt an administrator \(plugins\.plugins\.deny-logins\.exempt: \[<entity id>\]\) or accept the risk \(plugins\.plugins\.deny-logins\.allowLockout: true\)/,
    );
    const serve = await runCli(['serve'], env({ KEYHOLD_BOOTSTRAP: `${ROOT}:root-secret` }));
    assert.equal(serve.code, 2, serve.stderr);
    assert.match(serve.stderr, /keyhold: bad configuration: .*deny-logins.*allowLockout: true/);
  });

  it('refuses to start when every exempt entity is gone, and starts when the risk is accepted (nobody gets in then)', async (t) => {
    const { env } = site(t, { exempt: ['nobody-here'] });
    assert.match(
      (await refusedStart(env({ KEYHOLD_BOOTSTRAP: `${ROOT}:root-secret` }))).message,
      /none of the entities its settings exempt \(nobody-here\) exists/,
    );
    const accepted = site(t, { exempt: [], allowLockout: true });
    const server = await start(t, accepted.env({ KEYHOLD_BOOTSTRAP: `${ROOT}:root-secret` }));
    assert.equal((await loginStatus(server.url, ROOT, 'root-secret')).code, 'KH_ERR_AUTH_FAILED');
  });

  it('a reload to a set that would lock every login out is refused; the old set keeps serving', async (t) => {
    const { env, configFile } = site(t, {});
    const server = await start(t, env({ KEYHOLD_BOOTSTRAP: `${ROOT}:root-secret` }));
    writeFileSync(configFile, YAML.stringify({ plugins: { pingInterval: 0, plugins: { 'deny-logins': { exempt: [] } } } }));
    const reload = await server.reloadPlugins();
    assert.equal(reload.swapped, false);
    assert.deepEqual(
      reload.failures.map((f) => f.name),
      ['deny-logins'],
    );
    assert.match(reload.failures[0]!.reason, /its settings exempt nobody/);
    await login(server.url, ROOT, 'root-secret');
  });

  it('a shadow plugin cannot lock anyone out, so it needs no exemption', async (t) => {
    const { env } = site(t, { exempt: [], mode: 'shadow' });
    const server = await start(t, env({ KEYHOLD_BOOTSTRAP: `${ROOT}:root-secret` }));
    await login(server.url, ROOT, 'root-secret');
    const metrics = await call(server.url, 'GET', '/metrics');
    assert.match(metrics.text, /^keyhold_plugin_shadow_vetoes_total\{plugin="deny-logins",hook="preAuthCheck"\} 1$/m);
  });
});
