// Shadow mode with a real plugin process through the real engine and store: whatever the plugin
// answers (a veto, a change, a failure, an invalid result) is logged and counted, and the request
// goes on as if the plugin were not there; a reload with `mode: enforce` switches the policy on.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { Entity, JsonObject } from 'keyhold-plugin-sdk';
import { Registry } from 'prom-client';
import { PluginHost } from '../../src/host/host.js';
import { NO_PLUGINS } from '../../src/lifecycle/dispatcher.js';
import { LifecycleEngine, type LifecycleStep } from '../../src/lifecycle/engine.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { alice, CapturedLogs, pluginDir, testSettings } from '../fixtures/plugin-host.js';

/** Sets alice's shell; `fault` tells the faulty plugin's preEntityUpdate how to misbehave (none: it appends "+faulty" to displayName). */
function setShell(shell: string, fault: string): LifecycleStep<Entity> {
  return {
    point: 'EntityUpdate',
    operation: 'entity.update-meta',
    request: { shell, fault } satisfies JsonObject,
    subjects: [{ kind: 'entity', key: 'alice' }],
    load: async (reader) => (await reader.getEntity('alice'))!,
    change: async (_reader, subject) => ({ ...subject, meta: { ...subject.meta, shell } }),
    commit: (tx, _loaded, final) => tx.updateEntity(final),
  };
}

async function setup(t: TestContext) {
  const store = SqliteStore.open(':memory:');
  t.after(() => store.close());
  await store.write((tx) => tx.insertEntity(alice));
  const engine = new LifecycleEngine(store, NO_PLUGINS);
  const logs = new CapturedLogs();
  const registry = new Registry();
  const directory = pluginDir(t, { faulty: 'faulty' });
  const settings = (mode: string) => testSettings({ directory, plugins: { faulty: { mode, timeout: '300ms' } } });
  const host = new PluginHost({
    settings: settings('shadow'),
    logger: logs.logger,
    registry,
    onSwap: (dispatcher) => engine.setDispatcher(dispatcher),
  });
  t.after(() => host.stop());
  await host.start();
  let requests = 0;
  const run = (shell: string, fault: string) =>
    engine.run(setShell(shell, fault), { requestId: `r${++requests}`, caller: 'root', capabilities: ['GLOBAL_ROOT'] });
  const saved = async () => (await store.reader.getEntity('alice'))!.meta;
  const counter = async (name: string, labels: string) => {
    const text = await registry.getSingleMetricAsString(name);
    return Number(new RegExp(`^${name}\\{${labels}\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  };
  return { host, logs, run, saved, counter, enforce: () => host.reload(settings('enforce')) };
}

describe('shadow mode with a real plugin', () => {
  it('a vetoing shadow plugin never blocks: the veto is logged with the request id and counted', async (t) => {
    const { logs, run, saved, counter, enforce } = await setup(t);
    await run('/bin/zsh', 'veto');
    assert.equal((await saved()).shell, '/bin/zsh');
    assert.equal(await counter('keyhold_plugin_shadow_vetoes_total', 'plugin="faulty",hook="preEntityUpdate"'), 1);
    const record = logs.find(
      (r) => r.msg === 'shadow plugin "faulty" would have refused the request in preEntityUpdate: display names may not be changed today',
    );
    assert.ok(record, 'the veto is logged');
    assert.deepEqual([record.level, record.reqId, record.plugin, record.hook], [40, 'r1', 'faulty', 'preEntityUpdate']);

    // Switched on, the same answer refuses the request.
    assert.equal((await enforce()).swapped, true);
    await assert.rejects(run('/bin/fish', 'veto'), { code: 'KH_ERR_PLUGIN_VETO' });
    assert.equal((await saved()).shell, '/bin/zsh');
  });

  it('a modifying shadow plugin changes nothing that is saved: the change is logged (which fields) and counted', async (t) => {
    const { logs, run, saved, counter, enforce } = await setup(t);
    const returned = await run('/bin/zsh', 'none');
    assert.equal(returned.meta.displayName, 'Alice');
    assert.deepEqual([(await saved()).displayName, (await saved()).shell], ['Alice', '/bin/zsh']);
    assert.equal(await counter('keyhold_plugin_shadow_changes_total', 'plugin="faulty",hook="preEntityUpdate"'), 1);
    const record = logs.find((r) => r.msg === 'shadow plugin "faulty" would have changed meta.displayName in preEntityUpdate');
    assert.ok(record, 'the change is logged');
    assert.equal(record.reqId, 'r1');

    // Switched on, the same change is saved.
    await enforce();
    await run('/bin/fish', 'none');
    assert.equal((await saved()).displayName, 'Alice+faulty');
  });

  it('a failing or invalid shadow plugin never fails the request, though its failureMode is closed', async (t) => {
    const { logs, run, saved, counter } = await setup(t);
    const shells = { throw: '/bin/a', hang: '/bin/b', 'change-id': '/bin/c' };
    for (const [fault, shell] of Object.entries(shells)) {
      await run(shell, fault);
      assert.equal((await saved()).shell, shell, `the request with fault ${fault} was committed`);
    }
    const failures = (kind: string) =>
      counter('keyhold_plugin_shadow_failures_total', `plugin="faulty",hook="preEntityUpdate",kind="${kind}"`);
    assert.deepEqual([await failures('crash'), await failures('timeout'), await failures('invalid')], [1, 1, 1]);
    assert.ok(
      logs.find(
        (r) =>
          r.msg ===
            'shadow plugin "faulty" failed in preEntityUpdate (invalid), not enforced: it changed id, which plugins may not change' &&
          r.reqId === 'r3',
      ),
    );
  });
});
