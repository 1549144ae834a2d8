// Plugin state in a real server, with fail2lock deployed as an operator would: its counts are kept
// in the server's store, so a lockout survives a restart of the plugin and of the server; each
// plugin has its own namespace; the operator unlocks with `keyhold plugin state fail2lock delete`.
// The client is told nothing but "wrong secret"; the log and the metrics name fail2lock.
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import YAML from 'yaml';
import { startServer, type ServerHandle } from '../../src/server.js';
import { repoPath } from '../support/plugin-projects.js';
import { call, capturingLogger, expectCode, killChildren, login, runCli, scratchDir } from '../support/keyhold.js';

after(killChildren);

const ROOT_SECRET = 'Root-Secret-for-state-2026';
const ALICE_SECRET = 'Alice-Secret-for-state-1';

interface PluginInfo {
  name: string;
  state: string;
  pid: number | null;
}

describe('plugin state in a running server (fail2lock)', () => {
  const dir = scratchDir('plugin-state');
  const pluginDir = join(dir, 'plugins');
  mkdirSync(pluginDir);
  // The same file twice: the host names each namespace after the plugin's file, whatever the plugin calls itself.
  symlinkSync(repoPath('examples/fail2lock/dist/fail2lock.js'), join(pluginDir, 'fail2lock'));
  symlinkSync(repoPath('examples/fail2lock/dist/fail2lock.js'), join(pluginDir, 'fail2lock-b'));
  const fail2lock = { config: { allowedFails: 2, interval: '1h' } };
  writeFileSync(
    join(dir, 'keyhold.yaml'),
    YAML.stringify({
      listen: { host: '127.0.0.1', port: 0 },
      dataDir: join(dir, 'data'),
      hash: { memoryCost: 256, timeCost: 1 },
      loginThrottle: { baseDelay: 0 },
      plugins: { directory: pluginDir, pingInterval: 0, plugins: { fail2lock, 'fail2lock-b': fail2lock } },
    }),
  );
  const { logger, records } = capturingLogger('info');
  let server: ServerHandle | undefined;
  after(() => server?.close());

  const start = async () => {
    server = await startServer({ cwd: dir, env: { KEYHOLD_BOOTSTRAP: `root:${ROOT_SECRET}` }, logger, print: () => undefined });
    return server;
  };
  const authCheck = async (secret: string) => (await call(server!.url, 'POST', '/v1/auth/check', { body: { id: 'alice', secret } })).status;
  const plugins = async (token: string) => (await call(server!.url, 'GET', '/v1/plugins', { token })).body.plugins as PluginInfo[];

  it('keeps the lockout over a plugin restart and a server restart, per plugin, until the operator deletes the key', async () => {
    await start();
    let token = await login(server!.url, 'root', ROOT_SECRET);
    assert.equal((await call(server!.url, 'POST', '/v1/entities', { token, body: { id: 'alice', secret: ALICE_SECRET } })).status, 201);
    for (let i = 0; i < 2; i++) assert.equal(await authCheck('wrong'), 401);
    const locked = await call(server!.url, 'POST', '/v1/auth/check', { body: { id: 'alice', secret: ALICE_SECRET } });
    const unknown = await call(server!.url, 'POST', '/v1/auth/check', { body: { id: 'nobody', secret: ALICE_SECRET } });
    assert.deepEqual([locked.status, locked.body], [unknown.status, unknown.body], 'refused exactly as a wrong secret or an unknown id');
    assert.equal(locked.body.code, 'KH_ERR_AUTH_FAILED');
    const refusal = records.find((r) => r.entity === 'alice' && r.reason === 'plugin_veto');
    assert.equal((refusal?.detail as { plugin?: string } | undefined)?.plugin, 'fail2lock', 'the log says fail2lock refused');
    const metrics = (await call(server!.url, 'GET', '/metrics')).text;
    assert.match(metrics, /^keyhold_auth_failures_total\{reason="plugin_veto"\} 1$/m);
    assert.match(metrics, /^keyhold_plugin_vetoes_total\{plugin="fail2lock",hook="preAuthCheck"\} 1$/m);

    // Each plugin counts in its own namespace: fail2lock (called first, by name) counted the refused attempt too, fail2lock-b was not called for it.
    for (const [name, count] of [
      ['fail2lock', '3'],
      ['fail2lock-b', '2'],
    ]) {
      const entry = await call(server!.url, 'GET', `/v1/plugins/${name}/state/alice`, { token });
      assert.equal(entry.status, 200, entry.text);
      assert.equal((entry.body as { value: string }).value, count, name);
    }

    // A plugin restart: the new process reads the same counts.
    const before = (await plugins(token)).find((p) => p.name === 'fail2lock')!;
    process.kill(before.pid!, 'SIGKILL');
    for (let i = 0; ; i++) {
      const now = (await plugins(token)).find((p) => p.name === 'fail2lock')!;
      if (now.state === 'ready' && now.pid !== before.pid) break;
      if (i >= 200) assert.fail(`fail2lock was not restarted: ${JSON.stringify(now)}`);
      await sleep(50);
    }
    assert.equal(await authCheck(ALICE_SECRET), 401, 'still locked after the plugin restarted');

    // A server restart: the counts are in its store.
    await server!.close();
    await start();
    token = await login(server!.url, 'root', ROOT_SECRET);
    assert.equal(await authCheck(ALICE_SECRET), 401, 'still locked after the server restarted');

    const env = { KEYHOLD_SERVER: server!.url, KEYHOLD_TOKEN: token };
    const listed = expectCode(await runCli(['plugin', 'state', 'fail2lock', 'list'], env), 0, 'plugin state list');
    assert.match(listed.stdout, /^alice\s+5\s+5\s+20\d\d-/m);
    expectCode(await runCli(['plugin', 'state', 'fail2lock', 'delete', 'alice'], env), 0, 'plugin state delete');
    const missing = expectCode(await runCli(['plugin', 'state', 'fail2lock', 'get', 'alice'], env), 1, 'plugin state get');
    assert.match(missing.stderr, /KH_ERR_PLUGIN_STATE_NOT_FOUND/);
    assert.equal(await authCheck(ALICE_SECRET), 401, 'fail2lock-b still counts alice in its own namespace');
    expectCode(await runCli(['plugin', 'state', 'fail2lock-b', 'delete', 'alice'], env), 0, 'plugin state delete');
    assert.equal(await authCheck(ALICE_SECRET), 200, 'unlocked by the operator');
    assert.equal(
      (await call(server!.url, 'GET', '/v1/plugins/fail2lock/state/alice', { token })).status,
      404,
      'a success clears the count',
    );
  });

  it('needs GLOBAL_ROOT to read a plugin state, and refuses a key over the limit clearly', async () => {
    const token = await login(server!.url, 'root', ROOT_SECRET);
    assert.equal(
      (await call(server!.url, 'POST', '/v1/entities', { token, body: { id: 'bob', secret: 'Bob-Secret-for-state-1' } })).status,
      201,
    );
    const bob = await login(server!.url, 'bob', 'Bob-Secret-for-state-1');
    const refused = await call(server!.url, 'GET', '/v1/plugins/fail2lock/state', { token: bob });
    assert.deepEqual([refused.status, refused.body.code], [403, 'KH_ERR_FORBIDDEN']);
    const long = await call(server!.url, 'GET', `/v1/plugins/fail2lock/state/${'k'.repeat(600)}`, { token });
    assert.deepEqual([long.status, long.body.code], [400, 'KH_ERR_INVALID_INPUT']);
  });
});
