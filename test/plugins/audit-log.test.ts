import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HOOKS, implementedHooks } from 'keyhold-plugin-sdk';
import { fakeEntity, fakeGroup, PluginHarness } from 'keyhold-plugin-sdk/testing';
import { AuditLog } from '../../plugins/src/audit-log.js';

describe('audit-log', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'keyhold-audit-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const lines = async (file: string) => (await readFile(file, 'utf8')).trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

  it('implements exactly the twelve POST hooks', () => {
    assert.deepEqual(implementedHooks(new AuditLog()), HOOKS.filter((h) => h.phase === 'post').map((h) => h.name));
  });

  it('appends one line per call: who, what, when, which request, never the secret', async () => {
    const file = join(dir, 'one.log');
    const h = await PluginHarness.start(new AuditLog(), { config: { file }, caller: 'root' });
    await h.call('postSecretChange', fakeEntity({ id: 'alice' }), { secret: 'Hunter2-Hunter2' }, { requestId: 'r1', operation: 'entity.set-secret' });
    await h.call('postGroupUpdate', fakeGroup({ name: 'staff' }), { patch: { displayName: 'Staff' } }, { requestId: 'r2', operation: 'group.update' });
    assert.deepEqual(await lines(file), [
      { time: '2026-01-01T00:00:00.000Z', requestId: 'r1', caller: 'root', operation: 'entity.set-secret', hook: 'postSecretChange', entity: 'alice', request: {} },
      { time: '2026-01-01T00:00:00.000Z', requestId: 'r2', caller: 'root', operation: 'group.update', hook: 'postGroupUpdate', group: 'staff', request: { patch: { displayName: 'Staff' } } },
    ]);
    assert.doesNotMatch(await readFile(file, 'utf8'), /Hunter2/);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
  });

  it('only ever appends to an existing file', async () => {
    const file = join(dir, 'two.log');
    for (const requestId of ['a', 'b']) {
      const h = await PluginHarness.start(new AuditLog(), { config: { file } });
      await h.call('postEntityLock', fakeEntity(), {}, { requestId });
    }
    assert.deepEqual((await lines(file)).map((l) => l.requestId), ['a', 'b']);
  });

  it('requires the file setting', async () => {
    await assert.rejects(PluginHarness.start(new AuditLog()), /config "file": is required/);
  });
});
