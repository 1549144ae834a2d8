// Reloading the plugin set without a restart: all or nothing, an atomic swap, and the old
// processes stopped only after their calls in flight.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { HookDispatcher } from '../../src/lifecycle/dispatcher.js';
import { PluginHost } from '../../src/host/host.js';
import { runHook } from '../../src/lifecycle/chain.js';
import { addPlugin, alice, CapturedLogs, context, pluginDir, processGone, testSettings, waitForExit } from '../fixtures/plugin-host.js';

function hostWithSwaps(t: Parameters<typeof pluginDir>[0], dir: string) {
  const swaps: HookDispatcher[] = [];
  const logs = new CapturedLogs();
  const host = new PluginHost({ settings: testSettings({ directory: dir }), logger: logs.logger, onSwap: (d) => swaps.push(d) });
  t.after(() => host.stop());
  return { host, swaps, logs };
}

describe('plugin reload', () => {
  it('keeps the old set serving when a plugin of the new set fails to load, and reports it', async (t) => {
    const dir = pluginDir(t, { rec: 'recorder' });
    const { host, swaps, logs } = hostWithSwaps(t, dir);
    await host.start();
    const before = host.status();
    addPlugin(dir, 'dies', 'exits-during-start');
    const result = await host.reload();
    assert.equal(result.swapped, false);
    assert.equal(result.failures.length, 1);
    assert.equal(result.failures[0]!.name, 'dies');
    assert.match(result.failures[0]!.reason, /exited with code 3/);
    assert.deepEqual(result.plugins, before, 'the old set, unchanged');
    assert.equal(swaps.length, 1, 'only the start swapped');
    assert.equal(host.dispatcher, swaps[0]);
    assert.ok(logs.find((r) => r.level === 50 && /plugin reload failed, the current plugins keep serving: dies: /.test(r.msg)));
    assert.equal((await runHook(host.dispatcher, 'preEntityCreate', alice, {}, context('preEntityCreate'))).meta.displayName, 'Alice');
  });

  it('swaps atomically to the new set and stops the old processes after their calls in flight', async (t) => {
    const dir = pluginDir(t, { faulty: 'faulty' });
    const { host, swaps } = hostWithSwaps(t, dir);
    const oldDispatcher = await host.start();
    const oldPid = host.status()[0]!.pid!;
    // A request that started on the old set and is still waiting for the plugin.
    const inFlight = runHook(oldDispatcher, 'preEntityUpdate', alice, { fault: 'slow', ms: 300 }, context('preEntityUpdate'));
    rmSync(join(dir, 'faulty.js'));
    addPlugin(dir, 'rec', 'recorder');
    const result = await host.reload();
    assert.equal(result.swapped, true);
    assert.deepEqual(
      result.plugins.map((p) => [p.name, p.state]),
      [['rec', 'ready']],
    );
    assert.equal(swaps.length, 2);
    assert.equal(host.dispatcher, swaps[1]);
    assert.deepEqual(host.dispatcher.handlersFor('preEntityUpdate'), []);
    assert.equal((await inFlight).meta.displayName, 'slow', 'the call in flight finished on the old process');
    await waitForExit(oldPid);
    assert.ok(processGone(oldPid));
  });

  it('keeps a replaced set until the requests that started on it are done, so their POST hooks still run', async (t) => {
    const dir = pluginDir(t, { rec: 'recorder' });
    const { host, swaps } = hostWithSwaps(t, dir);
    const oldDispatcher = await host.start();
    const oldPid = host.status()[0]!.pid!;
    // A request between its PRE and POST hooks: no call in flight, but it holds the old set.
    const release = oldDispatcher.lease!();
    const reloaded = host.reload();
    // The swap happens once the new set has loaded; the old set's stop then waits for the lease.
    const giveUp = Date.now() + 20_000;
    while (swaps.length < 2) {
      assert.ok(Date.now() < giveUp, 'the reload never swapped');
      await new Promise((wake) => setTimeout(wake, 10));
    }
    assert.notEqual(host.dispatcher, oldDispatcher);
    assert.equal(
      (await runHook(oldDispatcher, 'preEntityCreate', alice, {}, context('preEntityCreate'))).meta.displayName,
      'Alice',
      'the old process still answers',
    );
    assert.ok(!processGone(oldPid));
    release();
    assert.equal((await reloaded).swapped, true);
    await waitForExit(oldPid);
    assert.ok(processGone(oldPid));
  });

  it('brings a failed plugin back and applies the new settings', async (t) => {
    const dir = pluginDir(t, { faulty: 'faulty' });
    const { host } = hostWithSwaps(t, dir);
    await host.reload(testSettings({ directory: dir, restart: { maxCrashes: 1 } }));
    await assert.rejects(runHook(host.dispatcher, 'preEntityUpdate', alice, { fault: 'exit' }, context('preEntityUpdate')), {
      code: 'KH_ERR_PLUGIN_FAILED',
    });
    assert.equal(host.status()[0]!.state, 'failed');
    const result = await host.reload(testSettings({ directory: dir, plugins: { faulty: { order: 1 } } }));
    assert.equal(result.swapped, true);
    assert.deepEqual(
      result.plugins.map((p) => [p.state, p.order, p.restarts]),
      [['ready', 1, 0]],
    );
    assert.equal(
      (await runHook(host.dispatcher, 'preEntityUpdate', alice, {}, context('preEntityUpdate'))).meta.displayName,
      'Alice+faulty',
    );
  });
});
