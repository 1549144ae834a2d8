// Processes a plugin starts do not outlive it: each plugin leads a process group of its own, which
// the host ends when the plugin crashes, is reloaded away or stopped, and which the plugin (SDK
// serve) ends itself when its stdin closes because the server was killed with SIGKILL.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { runHook } from '../../src/lifecycle/chain.js';
import { alice, context, fixture, processGone, startHost, waitForExit, type CapturedLogs } from '../fixtures/plugin-host.js';
import { killChildren, scratchDir, serverEnv, startServerProcess, type ServerProcess } from '../support/keyhold.js';

after(killChildren);

/** Makes sure a child the old code would leave behind does not outlive the test either. */
function reap(t: TestContext, pid: number): number {
  t.after(() => {
    if (!processGone(pid)) process.kill(pid, 'SIGKILL');
  });
  return pid;
}

/** The pid of the child started by the plugin's next start after the ones in `known`. */
async function nextChild(t: TestContext, logs: CapturedLogs, known: number[] = []): Promise<number> {
  const record = await logs.waitFor((r) => typeof r.childPid === 'number' && !known.includes(r.childPid));
  return reap(t, record.childPid as number);
}

/** A `keyhold serve` process whose one plugin started a child; resolves with both. */
async function serverWithChild(t: TestContext): Promise<{ server: ServerProcess; childPid: number; pluginPid: number }> {
  const dir = scratchDir('groups');
  const plugins = join(dir, 'plugins');
  mkdirSync(plugins);
  symlinkSync(fixture('with-child'), join(plugins, 'kid.js'));
  const server = await startServerProcess(serverEnv(join(dir, 'data'), { KEYHOLD_PLUGIN_DIR: plugins }));
  const records = server
    .stdout()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  const started = records.find((r) => typeof r.childPid === 'number');
  assert.ok(started, `the plugin logged no child pid:\n${server.stdout()}`);
  return { server, childPid: reap(t, started.childPid as number), pluginPid: reap(t, started.pid as number) };
}

describe('the processes a plugin starts', () => {
  it('end when the plugin crashes; the restarted plugin runs its own', async (t) => {
    const { host, logs } = await startHost(t, { kid: 'with-child' });
    const first = await nextChild(t, logs);
    await assert.rejects(runHook(host.dispatcher, 'preEntityUpdate', alice, { fault: 'exit' }, context('preEntityUpdate')), {
      code: 'KH_ERR_PLUGIN_FAILED',
    });
    const second = await nextChild(t, logs, [first]);
    await waitForExit(first);
    assert.ok(!processGone(second), "the restarted plugin's child runs");
  });

  it('end when a reload stops the old set', async (t) => {
    const { host, logs } = await startHost(t, { kid: 'with-child' });
    const first = await nextChild(t, logs);
    assert.equal((await host.reload()).swapped, true);
    const second = await nextChild(t, logs, [first]);
    await waitForExit(first);
    assert.ok(!processGone(second), "the new set's child runs");
  });

  it('end when the host stops its plugins', async (t) => {
    const { host, logs } = await startHost(t, { kid: 'with-child' });
    const child = await nextChild(t, logs);
    await host.stop();
    await waitForExit(child);
  });

  it('end when the server shuts down on SIGTERM', async (t) => {
    const { server, childPid, pluginPid } = await serverWithChild(t);
    assert.equal(await server.stop(), 0);
    await waitForExit(pluginPid);
    await waitForExit(childPid);
  });

  it('end when the server is killed with SIGKILL: the plugin sees its stdin close and ends its group', async (t) => {
    const { server, childPid, pluginPid } = await serverWithChild(t);
    server.child.kill('SIGKILL');
    await once(server.child, 'exit');
    await waitForExit(pluginPid);
    await waitForExit(childPid);
  });
});
