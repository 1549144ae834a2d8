// Committed events delivered to real plugin processes through the real host: only to the plugins
// that declared the hook, once per change; a plugin that crashes while taking one gets it again
// from its restarted process; a reload hands delivery to the new processes without repeating.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Outbox } from '../../src/events/outbox.js';
import { PluginHost } from '../../src/host/host.js';
import { Identity } from '../../src/identity/identity.js';
import { NO_PLUGINS } from '../../src/lifecycle/dispatcher.js';
import { LifecycleEngine, serverRequest } from '../../src/lifecycle/engine.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { CapturedLogs, pluginDir, testSettings, type FixtureName } from '../fixtures/plugin-host.js';
import { FAST_HASH } from '../support/identity-harness.js';
import { scratchDir } from '../support/keyhold.js';
import { eventually, recordedAttempts } from '../support/recorder-log.js';

/** The server's wiring of store, outbox, engine and plugin host, over fixture plugins. */
async function serverParts(t: TestContext, plugins: Record<string, FixtureName>, entries: Record<string, unknown>) {
  const store = SqliteStore.open(':memory:');
  const outbox = new Outbox({
    store,
    settings: { retentionMs: 60_000, maxAttempts: 5, retryInitialDelayMs: 1, retryMaxDelayMs: 20, leaseTtlMs: 10_000, leaseRenewMs: 3_000 },
    logger: pino({ level: 'silent' }),
    registry: new Registry(),
  });
  const engine = new LifecycleEngine(store, NO_PLUGINS, () => outbox.wake());
  const host = new PluginHost({
    settings: testSettings({ directory: pluginDir(t, plugins), plugins: entries }),
    logger: new CapturedLogs().logger,
    onSwap: (dispatcher) => {
      void outbox.use(dispatcher.subscribers ?? []);
      engine.setDispatcher(dispatcher);
    },
  });
  host.onStateChange((status) => status.state === 'ready' && outbox.pluginReady(status.name));
  t.after(async () => {
    await outbox.stop();
    await host.stop();
    await store.close();
  });
  await host.start();
  return { store, outbox, host, identity: new Identity(store, engine, { hash: FAST_HASH }) };
}

const info = (requestId: string) => ({ ...serverRequest(requestId), caller: 'root' });

describe('committed events to plugin processes', () => {
  it('each plugin gets each change of the points it declared, once, after the commit; others get nothing', async (t) => {
    const dir = scratchDir('events-host');
    const [auditFile, groupsFile] = [join(dir, 'audit.jsonl'), join(dir, 'groups.jsonl')];
    const { host, identity, store } = await serverParts(
      t,
      { audit: 'committed-recorder', groups: 'committed-recorder', plain: 'recorder' },
      {
        audit: { config: { file: auditFile } },
        groups: { config: { file: groupsFile, hooks: ['committedGroupCreate'] } },
      },
    );
    assert.deepEqual(
      host.dispatcher.subscribers?.map((s) => s.plugin),
      ['audit', 'groups'],
      'recorder declared no committed hook',
    );

    await identity.createEntity(info('r1'), { id: 'alice' });
    await identity.createGroup(info('r2'), { name: 'staff' });
    await identity.addMember(info('r3'), 'staff', 'alice');
    await eventually('audit got the three changes', () => recordedAttempts(auditFile).length >= 3);
    await eventually('groups got the group', () => recordedAttempts(groupsFile).length >= 1);

    const events = await store.outbox.eventsAfter(0, 10);
    assert.deepEqual(
      recordedAttempts(auditFile).map((l) => [l.outcome, l.hook, l.seq, l.subjectKey, l.attempt]),
      events.map((e) => ['delivered', `committed${e.point}`, e.seq, e.subjectKey, 1]),
    );
    assert.deepEqual(
      recordedAttempts(groupsFile).map((l) => [l.hook, l.subjectKey]),
      [['committedGroupCreate', 'staff']],
    );
    // One more change, waited for: had anything been delivered twice, it would have arrived before it.
    await identity.lockEntity(info('r4'), 'alice');
    await eventually('audit got the lock', () => recordedAttempts(auditFile).length >= 4);
    assert.equal(recordedAttempts(auditFile).length, 4);
    assert.equal(recordedAttempts(groupsFile).length, 1);
  });

  it('a plugin that crashes taking an event gets it again from its restarted process', async (t) => {
    const dir = scratchDir('events-crash');
    const file = join(dir, 'audit.jsonl');
    const { identity } = await serverParts(
      t,
      { audit: 'committed-recorder' },
      { audit: { config: { file, crashOnce: join(dir, 'crashed') } } },
    );
    await identity.createEntity(info('r1'), { id: 'alice' });
    await eventually('delivered after the crash', () => recordedAttempts(file).some((l) => l.outcome === 'delivered'));
    const [crashed, delivered] = recordedAttempts(file);
    assert.equal(crashed!.outcome, 'crashed');
    assert.deepEqual([delivered!.outcome, delivered!.seq, delivered!.attempt], ['delivered', crashed!.seq, 2]);
    assert.notEqual(delivered!.pid, crashed!.pid, 'taken by the restarted process');
  });

  it('after a reload the new processes take over where the old ones stopped, repeating nothing', async (t) => {
    const dir = scratchDir('events-reload');
    const file = join(dir, 'audit.jsonl');
    const { host, identity } = await serverParts(t, { audit: 'committed-recorder' }, { audit: { config: { file } } });
    await identity.createEntity(info('r1'), { id: 'alice' });
    await eventually('the first event', () => recordedAttempts(file).length === 1);
    const reloaded = await host.reload();
    assert.equal(reloaded.swapped, true);
    await identity.createEntity(info('r2'), { id: 'bob' });
    await eventually('the second event', () => recordedAttempts(file).length >= 2);
    const [first, second] = recordedAttempts(file);
    assert.deepEqual([first!.subjectKey, second!.subjectKey], ['alice', 'bob']);
    assert.equal(recordedAttempts(file).length, 2, 'nothing delivered twice');
    assert.notEqual(second!.pid, first!.pid, 'by the new process');
  });
});
