// Plugins through the lifecycle engine with a real store: a plugin failure aborts the request
// and nothing is written; the engine takes each new plugin set from the host's onSwap.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Entity, JsonObject } from 'keyhold-plugin-sdk';
import { PluginHost } from '../../src/host/host.js';
import { LifecycleEngine, REQUEST_DEADLINE_MS, type LifecycleStep } from '../../src/lifecycle/engine.js';
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

    await assert.rejects(engine.run(renameAlice({ displayName: 'Vetoed', fault: 'veto' }), info), {
      code: 'KH_ERR_PLUGIN_VETO',
      status: 422,
    });
    assert.equal(await displayName(), 'Alice');
    await assert.rejects(engine.run(renameAlice({ displayName: 'Crashed', fault: 'exit' }), info), {
      code: 'KH_ERR_PLUGIN_FAILED',
      status: 502,
    });
    assert.equal(await displayName(), 'Alice');
    await host.reload();
    const committed = await engine.run(renameAlice({ displayName: 'Bob', fault: 'none' }), info);
    assert.equal(committed.meta.displayName, 'Bob');
    assert.equal(await displayName(), 'Bob');
  });

  it('a request late from waiting gives a plugin only the time it has left, and the timeout names that plugin', async (t) => {
    const store = SqliteStore.open(':memory:');
    t.after(() => store.close());
    await store.write((tx) => tx.insertEntity(alice));
    const engine = new LifecycleEngine(store, NO_PLUGINS);
    // The plugin's own timeout is far longer than what the request has left.
    const host = new PluginHost({
      settings: testSettings({ directory: pluginDir(t, { faulty: 'faulty' }), callTimeout: '20s' }),
      logger: new CapturedLogs().logger,
      onSwap: (d) => engine.setDispatcher(d),
    });
    t.after(() => host.stop());
    await host.start();
    const left = 300;
    const info = {
      requestId: 'late',
      caller: 'root',
      capabilities: ['GLOBAL_ROOT'] as const,
      arrivedAt: Date.now() - REQUEST_DEADLINE_MS + left,
    };
    const err = (await engine.run(renameAlice({ displayName: 'Late', fault: 'hang' }), info).catch((e: unknown) => e)) as {
      code: string;
      message: string;
      details: { plugin: string };
    };
    assert.equal(err.code, 'KH_ERR_PLUGIN_TIMEOUT', err.message);
    assert.equal(err.details.plugin, 'faulty');
    const allowed = Number(/no answer within (\d+) ms/.exec(err.message)?.[1]);
    assert.ok(allowed <= left, `the call was given ${allowed} ms, not the plugin's 20 s: ${err.message}`);
    assert.equal((await store.reader.getEntity('alice'))!.meta.displayName, 'Alice');
  });
});
