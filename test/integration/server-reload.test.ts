// A plugin reload (POST /v1/plugins/reload, `keyhold plugin reload`, SIGHUP) reads the settings
// file again: a changed order or config takes effect, and a config the plugin refuses or a file
// that is not valid fails the reload while the old set keeps serving.
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it, type TestContext } from 'node:test';
import YAML from 'yaml';
import { fixture } from '../fixtures/plugin-host.js';
import { call, killChildren, login, runCli, scratchDir, serverEnv, startServerProcess, startTestServer } from '../support/keyhold.js';

after(killChildren);

interface Status {
  name: string;
  pid: number;
  order: number;
}

/** Plugins a and b (recorder: preEntityCreate appends config.tag to displayName) and picky (faulty: refuses config.reject), and a settings file for them. */
function site() {
  const dir = scratchDir('reload');
  const plugins = join(dir, 'plugins');
  mkdirSync(plugins);
  symlinkSync(fixture('recorder'), join(plugins, 'a.js'));
  symlinkSync(fixture('recorder'), join(plugins, 'b.js'));
  symlinkSync(fixture('faulty'), join(plugins, 'picky.js'));
  const file = join(dir, 'keyhold.yaml');
  const write = (settings: unknown) => writeFileSync(file, YAML.stringify(settings));
  const plugin = (order: unknown, tag: string) => ({ order, config: { tag } });
  write({ plugins: { plugins: { a: plugin(1, '-a'), b: plugin(2, '-b') } } });
  return { dir, plugin, write, env: { KEYHOLD_CONFIG: file, KEYHOLD_PLUGIN_DIR: plugins } };
}

async function serverOf(t: TestContext, env: NodeJS.ProcessEnv) {
  const server = await startTestServer('pw', env);
  t.after(() => server.close());
  const token = await login(server.url, 'root', 'pw');
  return {
    reload: () => call(server.url, 'POST', '/v1/plugins/reload', { token }),
    plugins: async () => (await call(server.url, 'GET', '/v1/plugins', { token })).body.plugins as Status[],
    /** Creates an entity and returns its displayName: the plugins' tags in call order. */
    create: async (id: string) => {
      const created = await call(server.url, 'POST', '/v1/entities', { token, body: { id, meta: { displayName: id } } });
      assert.equal(created.status, 201, created.text);
      return created.body.meta.displayName as string;
    },
  };
}

describe('a plugin reload reads the settings file again', () => {
  it('applies a changed order and a changed config', async (t) => {
    const { plugin, write, env } = site();
    const server = await serverOf(t, env);
    assert.equal(await server.create('alice'), 'alice-a-b');
    write({ plugins: { plugins: { a: plugin(3, '-a'), b: plugin(2, '-b') } } });
    assert.equal((await server.reload()).status, 200);
    assert.equal(await server.create('bob'), 'bob-b-a', 'b is called first now');
    write({ plugins: { plugins: { a: plugin(3, '-A2'), b: plugin(2, '-b') } } });
    assert.equal((await server.reload()).status, 200);
    assert.equal(await server.create('carol'), 'carol-b-A2', 'a got its new config');
  });

  it("fails with the plugin's message when it refuses its new config, and the old set keeps serving", async (t) => {
    const { plugin, write, env } = site();
    const server = await serverOf(t, env);
    const before = await server.plugins();
    write({ plugins: { plugins: { a: plugin(3, '-x'), b: plugin(2, '-y'), picky: { config: { reject: true } } } } });
    const refused = await server.reload();
    assert.equal(refused.status, 502, refused.text);
    assert.equal(refused.body.code, 'KH_ERR_PLUGIN_FAILED');
    assert.match(
      refused.body.message,
      /plugin reload failed, the previous plugins keep serving: picky: config rejected: config\.reject is set, so this config is refused/,
    );
    assert.deepEqual(await server.plugins(), before);
    assert.equal(await server.create('dave'), 'dave-a-b', 'the old order and config');
  });

  it('fails with the settings error when the file is not valid, and the old set keeps serving', async (t) => {
    const { write, env } = site();
    const server = await serverOf(t, env);
    const before = await server.plugins();
    write({ plugins: { plugins: { a: { order: 'first' } } } });
    const refused = await server.reload();
    assert.equal(refused.status, 500, refused.text);
    assert.equal(refused.body.code, 'KH_ERR_CONFIG_INVALID');
    assert.match(refused.body.message, /the settings cannot be read: .*keyhold\.yaml: plugins\.plugins\.a\.order: expected an integer/);
    assert.deepEqual(await server.plugins(), before);
    assert.equal(await server.create('erin'), 'erin-a-b');
  });

  it('on SIGHUP and for keyhold plugin reload too', async () => {
    const { dir, plugin, write, env } = site();
    const server = await startServerProcess(serverEnv(join(dir, 'data'), { ...env, KEYHOLD_BOOTSTRAP: 'root:pw' }));
    const token = await login(server.url, 'root', 'pw');
    const orderOfA = async () =>
      ((await call(server.url, 'GET', '/v1/plugins', { token })).body.plugins as Status[]).find((p) => p.name === 'a')?.order;
    assert.equal(await orderOfA(), 1);
    write({ plugins: { plugins: { a: plugin(5, '-a'), b: plugin(2, '-b') } } });
    server.child.kill('SIGHUP');
    for (const until = Date.now() + 10_000; (await orderOfA()) !== 5; await sleep(50))
      assert.ok(Date.now() < until, 'SIGHUP did not apply the new order');

    write({ plugins: { plugins: { a: plugin(7, '-a'), picky: { config: { reject: true } } } } });
    const cli = await runCli(['plugin', 'reload'], { KEYHOLD_SERVER: server.url, KEYHOLD_TOKEN: token });
    assert.equal(cli.code, 1, cli.stderr);
    assert.match(cli.stderr, /picky: config rejected: config\.reject is set.*KH_ERR_PLUGIN_FAILED/);
    assert.equal(await orderOfA(), 5, 'the old set keeps serving');
    assert.equal(await server.stop(), 0);
  });
});
