// The plugin control surface of a server process: plugin status in /healthz, /v1/plugins and
// `keyhold system status`; reload by SIGHUP and by the API, where a failing new set leaves the
// old one serving; and no plugin process left after the server stops.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, it } from 'node:test';
import { fixture } from '../fixtures/plugin-host.js';
import { call, killChildren, login, runCli, serverEnv, startServerProcess, tempDir } from '../support/keyhold.js';
const dir = tempDir('plugins-api');

after(() => {
  killChildren();
  rmSync(dir, { recursive: true, force: true });
});

interface Status {
  name: string;
  state: string;
  pid: number | null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function eventually(what: string, check: () => Promise<boolean>, limitMs = 10_000): Promise<void> {
  const until = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > until) assert.fail(`${what}: not within ${limitMs} ms`);
    await sleep(50);
  }
}

it('reports, reloads (SIGHUP and API) and stops the plugin set of a server process', async () => {
  const pluginDir = join(dir, 'plugins');
  mkdirSync(pluginDir);
  symlinkSync(fixture('recorder'), join(pluginDir, 'recorder'));
  const server = await startServerProcess(serverEnv(join(dir, 'data'), { KEYHOLD_PLUGIN_DIR: pluginDir, KEYHOLD_BOOTSTRAP: 'root:pw' }));
  const token = await login(server.url, 'root', 'pw');
  const plugins = async () => (await call(server.url, 'GET', '/v1/plugins', { token })).body.plugins as Status[];

  assert.deepEqual((await call(server.url, 'GET', '/healthz')).body, { status: 'ok' }, 'without a token, no plugin details');
  const health = await call(server.url, 'GET', '/healthz', { token });
  assert.equal(health.status, 200);
  assert.equal(health.body.status, 'ok');
  assert.deepEqual(
    health.body.plugins.map((p: Status) => [p.name, p.state]),
    [['recorder', 'ready']],
  );
  const [first] = await plugins();
  assert.ok(first?.pid && alive(first.pid));

  symlinkSync(fixture('recorder'), join(pluginDir, 'second'));
  server.child.kill('SIGHUP');
  await eventually('SIGHUP loads the new set', async () => (await plugins()).length === 2);
  const reloaded = await plugins();
  assert.ok(reloaded.every((p) => p.state === 'ready' && p.pid !== first.pid));
  await eventually('the old set is stopped', async () => !alive(first.pid!));

  symlinkSync(fixture('exits-during-start'), join(pluginDir, 'broken'));
  const refused = await call(server.url, 'POST', '/v1/plugins/reload', { token });
  assert.equal(refused.status, 502, refused.text);
  assert.equal(refused.body.code, 'KH_ERR_PLUGIN_FAILED');
  assert.match(refused.body.message, /broken/);
  assert.deepEqual(
    refused.body.details.failures.map((f: { name: string }) => f.name),
    ['broken'],
  );
  assert.deepEqual(
    (await plugins()).map((p) => p.pid),
    reloaded.map((p) => p.pid),
    'the old set keeps serving',
  );

  const cli = (args: string[]) => runCli(args, { KEYHOLD_SERVER: server.url, KEYHOLD_TOKEN: token });
  const cliReload = await cli(['plugin', 'reload']);
  assert.equal(cliReload.code, 1, cliReload.stderr);
  assert.match(cliReload.stderr, /KH_ERR_PLUGIN_FAILED/);

  rmSync(join(pluginDir, 'broken'));
  const swapped = await call(server.url, 'POST', '/v1/plugins/reload', { token });
  assert.equal(swapped.status, 200, swapped.text);
  assert.equal(swapped.body.swapped, true);

  const listed = await cli(['--json', 'plugin', 'list']);
  assert.equal(listed.code, 0, listed.stderr);
  assert.deepEqual((JSON.parse(listed.stdout) as Status[]).map((p) => p.name).sort(), ['recorder', 'second']);
  const status = await cli(['system', 'status']);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /recorder\s+ready/);
  assert.match(status.stdout, /second\s+ready/);

  const last = await plugins();
  assert.equal(await server.stop(), 0);
  for (const p of last) assert.equal(alive(p.pid!), false, `plugin ${p.name} (pid ${p.pid}) outlived the server`);
});
