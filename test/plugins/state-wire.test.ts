// The plugin's `this.state` over the wire (a real child of the real host, the state in a SQLite
// store) answers a script of calls exactly as the SDK's harness does in memory: the same values,
// versions, refusals, codes and messages.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { StateErrorCodes, type JsonValue } from 'keyhold-plugin-sdk';
import { fakeEntity, PluginHarness } from 'keyhold-plugin-sdk/testing';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { startPluginChild } from '../../src/testing/plugin-child.js';
import { fixture } from '../fixtures/plugin-host.js';
import { StateProbe } from '../fixtures/plugins/state-probe.js';

const SCRIPT: JsonValue[][] = [
  ['get', 'k'],
  ['set', 'k', 'v'],
  ['get', 'k'],
  ['incr', 'n', { by: 2 }],
  ['incr', 'n'],
  ['compareAndSet', 'k', 'x', 'y'],
  ['compareAndSet', 'k', 'v', 'w'],
  ['compareAndSet', 'new', null, 'z'],
  ['entry', 'k'],
  ['list', ''],
  ['list', 'n', { limit: 1 }],
  ['delete', 'k'],
  ['delete', 'k'],
  ['incr', 'new'],
  ['set', '', 'v'],
  ['set', 'k'.repeat(600), 'v'],
  ['set', 'k', 'v', { ttlMs: 0 }],
  ['list', '', { limit: 5000 }],
];

describe('plugin state: the harness and the host answer alike', () => {
  const store = SqliteStore.open(':memory:');
  after(() => store.close());

  it('runs the same script to the same answers', async () => {
    const harness = await PluginHarness.start(new StateProbe());
    const inMemory = (await harness.call('preEntityCreate', fakeEntity(), { calls: SCRIPT })).state.results;

    const child = await startPluginChild(fixture('state-probe'), { pluginState: store.pluginState });
    after(() => child.stop());
    const overWire = (await child.call('preEntityCreate', fakeEntity(), { calls: SCRIPT })).state.results;

    assert.deepEqual(overWire, inMemory);
    const results = inMemory as JsonValue[];
    assert.equal(results[4], 3, 'incr answers the count');
    assert.deepEqual(results[14], { code: StateErrorCodes.InvalidParams, message: 'key: must not be empty' });
    // And it is in the server's store, in the namespace named after the plugin's file.
    assert.equal((await store.pluginState.get('state-probe', 'n', Date.now()))?.value, '3');

    // 50 increments sent at once over the wire, served concurrently by the host: exactly 50.
    await child.call('preEntityCreate', fakeEntity(), { calls: [], parallel: 50 });
    assert.equal((await store.pluginState.get('state-probe', 'parallel', Date.now()))?.value, '50');
  });
});
