// The test runner's check for left-behind processes (scripts/run-tests.mjs) counts only the
// processes of its own run: a keyhold server with plugins running beside the tests (as the README
// has you start one) is not counted, while a marked server, its plugin and the process that
// plugin started (in the plugin's own process group) are.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, it, type TestContext } from 'node:test';
import { fixture, processGone } from '../fixtures/plugin-host.js';
import { killChildren, scratchDir, serverEnv, startServerProcess } from '../support/keyhold.js';
import { leftoverProcesses, markedProcesses, TEST_RUN_ENV } from '../support/leftovers.js';

after(killChildren);

/** `keyhold serve` with one plugin that starts a child; `marker` is its TEST_RUN_ENV (undefined: none). */
async function server(t: TestContext, name: string, marker: string | undefined) {
  const dir = scratchDir(`leftovers-${name}`);
  const plugins = join(dir, 'plugins');
  mkdirSync(plugins);
  symlinkSync(fixture('with-child'), join(plugins, 'kid.js'));
  const started = await startServerProcess(serverEnv(join(dir, 'data'), { KEYHOLD_PLUGIN_DIR: plugins, [TEST_RUN_ENV]: marker }));
  const records = started
    .stdout()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  const child = records.find((r) => typeof r.childPid === 'number');
  assert.ok(child, `the plugin logged no child pid:\n${started.stdout()}`);
  const pids = { server: started.child.pid!, plugin: child.pid as number, child: child.childPid as number };
  t.after(() => {
    if (!processGone(pids.child)) process.kill(pids.child, 'SIGKILL');
  });
  return { ...started, pids };
}

it('counts the processes of its own run, plugins and their children included, and no unmarked server beside them', async (t) => {
  const runId = randomUUID();
  const beside = await server(t, 'beside', undefined);
  const ours = await server(t, 'ours', runId);
  const counted = markedProcesses(runId)
    .map((p) => p.pid)
    .sort();
  assert.deepEqual(counted, [ours.pids.server, ours.pids.plugin, ours.pids.child].sort());
  for (const pid of Object.values(beside.pids)) assert.ok(!processGone(pid), `the server beside the run (${pid}) is running`);
  assert.deepEqual(markedProcesses(randomUUID()), [], 'another run counts none of them');

  assert.equal(await ours.stop(), 0);
  assert.deepEqual(await leftoverProcesses(runId), [], 'nothing of the run is left once its server stopped');
  assert.equal(await beside.stop(), 0);
});
