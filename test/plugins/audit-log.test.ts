import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { COMMITTED_HOOK_NAMES, implementedHooks } from 'keyhold-plugin-sdk';
import { fakeEntity, fakeGroup, PluginHarness } from 'keyhold-plugin-sdk/testing';
import { AuditLog } from '../../plugins/src/audit-log.js';

describe('audit-log', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'keyhold-audit-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const lines = async (file: string) =>
    (await readFile(file, 'utf8'))
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  it('implements exactly the twelve committed hooks (no PRE/POST hook: a rolled-back change never reaches it)', () => {
    assert.deepEqual(implementedHooks(new AuditLog()), COMMITTED_HOOK_NAMES);
  });

  it('appends one line per committed event: who, what, when, which request and event, never the secret', async () => {
    const file = join(dir, 'one.log');
    const h = await PluginHarness.start(new AuditLog(), { config: { file }, caller: 'root' });
    await h.deliver('committedSecretChange', { after: fakeEntity({ id: 'alice' }), requestId: 'r1', operation: 'entity.set-secret' });
    await h.deliver('committedGroupUpdate', {
      after: fakeGroup({ name: 'staff' }),
      requestId: 'r2',
      operation: 'group.update',
      request: { patch: { displayName: 'Staff' } },
    });
    assert.deepEqual(await lines(file), [
      {
        time: '2026-01-01T00:00:00.000Z',
        seq: 1,
        requestId: 'r1',
        caller: 'root',
        operation: 'entity.set-secret',
        hook: 'committedSecretChange',
        entity: 'alice',
        request: {},
      },
      {
        time: '2026-01-01T00:00:00.000Z',
        seq: 2,
        requestId: 'r2',
        caller: 'root',
        operation: 'group.update',
        hook: 'committedGroupUpdate',
        group: 'staff',
        request: { patch: { displayName: 'Staff' } },
      },
    ]);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
  });

  it('says where the request came from: source, client address, user agent and client, when the event has them', async () => {
    const file = join(dir, 'provenance.log');
    const h = await PluginHarness.start(new AuditLog(), { config: { file } });
    const from = { source: 'api', clientAddress: '192.0.2.10', userAgent: 'keyhold-cli/1.0.0', client: 'cli/1.0.0' } as const;
    await h.deliver('committedEntityLock', { after: fakeEntity(), ...from });
    await h.deliver('committedEntityLock', { after: fakeEntity(), source: 'server' });
    // An event committed by an older server has none of them.
    await h.deliver('committedEntityLock', { after: fakeEntity() });
    const [full, server, old] = await lines(file);
    assert.deepEqual([full!.source, full!.clientAddress, full!.userAgent, full!.client], Object.values(from));
    assert.deepEqual(Object.keys(full!), [
      'time',
      'seq',
      'requestId',
      'caller',
      'source',
      'clientAddress',
      'userAgent',
      'client',
      'operation',
      'hook',
      'entity',
      'request',
    ]);
    assert.deepEqual(Object.keys(server!), ['time', 'seq', 'requestId', 'caller', 'source', 'operation', 'hook', 'entity', 'request']);
    assert.deepEqual(Object.keys(old!), ['time', 'seq', 'requestId', 'caller', 'operation', 'hook', 'entity', 'request']);
  });

  it('removes any field named secret from the request, at any depth', async () => {
    const file = join(dir, 'secret.log');
    const h = await PluginHarness.start(new AuditLog(), { config: { file } });
    await h.deliver('committedEntityUpdate', {
      after: fakeEntity(),
      request: { secret: 'Hunter2-Hunter2', nested: { secret: 'Hunter2-Hunter2', kept: 1 } },
    });
    assert.deepEqual((await lines(file))[0]!.request, { nested: { kept: 1 } });
    assert.doesNotMatch(await readFile(file, 'utf8'), /Hunter2/);
  });

  it('writes an event delivered again (at least once) only once, also after a restart of the plugin', async () => {
    const file = join(dir, 'again.log');
    const first = await PluginHarness.start(new AuditLog(), { config: { file } });
    const event = await first.deliver('committedEntityLock', { after: fakeEntity(), requestId: 'r1' });
    await first.deliver('committedEntityLock', { ...event }, { attempt: 2 });
    const restarted = await PluginHarness.start(new AuditLog(), { config: { file } });
    await restarted.deliver('committedEntityLock', { ...event }, { attempt: 3 });
    // The same seq from another request (another database) is another event.
    await restarted.deliver('committedEntityLock', { ...event, requestId: 'r2' });
    assert.deepEqual(
      (await lines(file)).map((l) => `${l.seq}:${l.requestId}`),
      ['1:r1', '1:r2'],
    );
  });

  it('only ever appends to an existing file, whatever it holds', async () => {
    const file = join(dir, 'two.log');
    await writeFile(file, 'a line from elsewhere\n');
    for (const requestId of ['a', 'b']) {
      const h = await PluginHarness.start(new AuditLog(), { config: { file } });
      await h.deliver('committedEntityLock', { after: fakeEntity(), requestId });
    }
    const text = await readFile(file, 'utf8');
    assert.ok(text.startsWith('a line from elsewhere\n'));
    assert.deepEqual(
      text
        .trimEnd()
        .split('\n')
        .slice(1)
        .map((l) => (JSON.parse(l) as { requestId: string }).requestId),
      ['a', 'b'],
    );
  });

  it('requires the file setting', async () => {
    await assert.rejects(PluginHarness.start(new AuditLog()), /config "file": is required/);
  });
});
