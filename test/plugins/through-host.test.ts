// The plugins as real children of the real host code (src/testing/plugin-child.ts).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { fakeEntity } from 'keyhold-plugin-sdk/testing';
import { isKeyholdError } from '../../src/errors.js';
import { startPluginChild, type PluginChild } from '../../src/testing/plugin-child.js';
import { repoPath } from '../support/plugin-projects.js';

const PYTHON_DENY = repoPath('examples/python-deny/python-deny');
const FAIL2LOCK = repoPath('examples/fail2lock/dist/fail2lock.js');
const PASSWORD_POLICY = repoPath('dist/plugins/src/password-policy.js');
const WEBHOOK = repoPath('dist/plugins/src/webhook.js');

/** Children started by a test, stopped after it even when an assertion failed. */
const started: PluginChild[] = [];
async function start(path: string, config: Parameters<typeof startPluginChild>[1] = {}): Promise<PluginChild> {
  const child = await startPluginChild(path, config);
  started.push(child);
  return child;
}
after(() => Promise.all(started.map((c) => c.stop())));

const vetoed = (message: RegExp) => (err: unknown) => isKeyholdError(err) && err.code === 'KH_ERR_PLUGIN_VETO' && message.test(err.message);

describe('a Python plugin written from docs/protocol.md', () => {
  it('loads, reports its hook, allows, vetoes, and its $/log records reach the host log', async () => {
    const child = await start(PYTHON_DENY, { config: { deny: ['root', 'admin'] } });
    assert.equal(child.status.state, 'ready');
    assert.deepEqual(child.status.hooks, ['preEntityCreate', 'committedEntityCreate']);
    const ok = await child.call('preEntityCreate', fakeEntity({ id: 'alice' }));
    assert.equal(ok.subject.id, 'alice');
    await assert.rejects(
      child.call('preEntityCreate', fakeEntity({ id: 'admin' })),
      vetoed(/plugin "python-deny" refused the request in preEntityCreate: the id "admin" is reserved/),
    );
    const record = child.logs.find((r) => r.msg === 'refusing to create a denied id');
    assert.ok(record, 'the $/log record is in the host log');
    assert.equal(record.level, 'warn');
    assert.equal(record.plugin, 'python-deny');
    assert.equal(record.entity, 'admin');
    assert.equal(record.source, 'api', 'it read the context the host sent');
    assert.equal(record.refusals, 1, 'the count from its state/incr request to the host');
    await assert.rejects(child.call('preEntityCreate', fakeEntity({ id: 'admin' })), vetoed(/reserved/));
    assert.deepEqual(
      child.logs.filter((r) => r.msg === 'refusing to create a denied id').map((r) => r.refusals),
      [1, 2],
    );
  });

  it('takes a committed event (answers null) and logs it', async () => {
    const child = await start(PYTHON_DENY);
    const alice = fakeEntity({ id: 'alice' });
    const event = {
      seq: 42,
      point: 'EntityCreate',
      operation: 'entity.create',
      subjectKind: 'entity',
      subjectKey: 'alice',
      before: null,
      after: alice,
      request: {},
      requestId: 'req-42',
      caller: 'root',
      at: '2026-01-01T00:00:00.000Z',
    } as const;
    await child.deliver(event, 2);
    const record = child.logs.find((r) => r.msg === 'entity created');
    assert.ok(record, 'the committed call was handled and logged');
    assert.deepEqual(
      [record.plugin, record.entity, record.seq, record.requestId, record.attempt],
      ['python-deny', 'alice', 42, 'req-42', 2],
    );
  });

  it('is refused at the handshake with its own message when the config is bad', async () => {
    await assert.rejects(
      start(PYTHON_DENY, { config: { deny: 'root' } }),
      /config rejected: config "deny": expected a list of entity ids, got "root"/,
    );
  });

  it('explains itself and exits non-zero when run by hand', () => {
    const run = spawnSync(PYTHON_DENY, { env: { PATH: process.env.PATH ?? '' }, encoding: 'utf8', timeout: 10_000 });
    assert.equal(run.status, 1);
    assert.match(run.stderr, /keyhold plugin, not meant to be run directly/);
  });
});

describe('SDK plugins as children', () => {
  it('fail2lock: config over the handshake, counts in the host state across calls, refusal as a veto', async () => {
    const child = await start(FAIL2LOCK, { config: { allowedFails: 2 } });
    assert.deepEqual(child.status.hooks, ['preAuthCheck', 'postAuthCheck']);
    const alice = fakeEntity({ id: 'alice' });
    for (let i = 0; i < 2; i++) await child.call('preAuthCheck', alice);
    await assert.rejects(
      child.call('preAuthCheck', alice),
      vetoed(/plugin "fail2lock" refused the request in preAuthCheck: 2 failed authentications/),
    );
    assert.ok(child.logs.some((r) => r.level === 'warn' && r.plugin === 'fail2lock' && r.entity === 'alice' && r.fails === 2));
  });

  it('fail2lock: a bad config is refused at initialize with a message naming the setting', async () => {
    await assert.rejects(start(FAIL2LOCK, { config: { interval: 'soon' } }), /config rejected: config "interval": expected a duration/);
  });

  it('password-policy: a veto carries what to fix', async () => {
    const child = await start(PASSWORD_POLICY);
    await assert.rejects(
      child.call('preSecretChange', fakeEntity({ id: 'alice' }), { secret: 'alice1' }),
      vetoed(/too weak: use at least 12 characters/),
    );
  });

  it('webhook: reports exactly the hooks its config names', async () => {
    const child = await start(WEBHOOK, { config: { url: 'http://127.0.0.1:9/', hooks: ['preGroupCreate'] } });
    assert.deepEqual(child.status.hooks, ['preGroupCreate']);
  });
});
