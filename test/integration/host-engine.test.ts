// Plugins through the lifecycle engine with a real store: a plugin failure aborts the request
// and nothing is written; the engine takes each new plugin set from the host's onSwap.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Entity, JsonObject } from 'keyhold-plugin-sdk';
import { PluginHost } from '../../src/host/host.js';
import { LifecycleEngine, type LifecycleStep } from '../../src/lifecycle/engine.js';
import { NO_PLUGINS } from '../../src/lifecycle/dispatcher.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { alice, CapturedLogs, pluginDir, testSettings } from '../fixtures/plugin-host.js';

function renameAlice(request: JsonObject & { displayName: string }): LifecycleStep<Entity> {
  return {
    point: 'EntityUpdate',
    operation: 'entity.update-meta',
    request,
    subjects: [{ kind: 'entity', key: 'alice' }],
    load: async (reader) => (await reader.getEntity('alice'))!,
    change: async (_reader, subject) => ({ ...subject, meta: { ...subject.meta, displayName: request.displayName } }),
    commit: (tx, _loaded, final) => tx.updateEntity(final),
  };
}

describe('plugins in the lifecycle engine', () => {
  it('a veto or a crash writes nothing; a good call commits', async (t) => {
    const store = SqliteStore.open(':memory:');
    t.after(() => store.close());
    await store.write((tx) => tx.insertEntity(alice));
    const engine = new LifecycleEngine(store, NO_PLUGINS);
    const host = new PluginHost({
      settings: testSettings({ directory: pluginDir(t, { faulty: 'faulty' }) }),
      logger: new CapturedLogs().logger,
      onSwap: (dispatcher) => engine.setDispatcher(dispatcher),
    });
    t.after(() => host.stop());
    await host.start();
    const info = { requestId: 'r1', caller: 'root', capabilities: ['GLOBAL_ROOT'] as const };
    const displayName = async () => (await store.reader.getEntity('alice'))!.meta.displayName;

    await assert.rejects(engine.run(renameAlice({ displayName: 'Vetoed', fault: 'veto' }), info), { code: 'KH_ERR_PLUGIN_VETO', status: 422 });
    assert.equal(await displayName(), 'Alice');
    await assert.rejects(engine.run(renameAlice({ displayName: 'Crashed', fault: 'exit' }), info), { code: 'KH_ERR_PLUGIN_FAILED', status: 502 });
    assert.equal(await displayName(), 'Alice');
    await host.reload();
    const committed = await engine.run(renameAlice({ displayName: 'Bob', fault: 'none' }), info);
    assert.equal(committed.meta.displayName, 'Bob');
    assert.equal(await displayName(), 'Bob');
  });
});
