// Fault injection: every way a plugin can misbehave, each driven through the real chain
// (runHook) with real plugin processes. For each: the host stays up, the call fails with the
// right error code naming plugin and hook, the plugin is restarted or marked failed as the
// policy says, and the log says what happened.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JsonObject } from 'keyhold-plugin-sdk';
import { KeyholdError, type ErrorCode } from '../../src/errors.js';
import { PluginLoadError } from '../../src/host/host.js';
import { runHook } from '../../src/lifecycle/chain.js';
import type { HookDispatcher } from '../../src/lifecycle/dispatcher.js';
import { alice, context, createHost, pluginDir, startHost, waitForState, type FixtureName } from '../fixtures/plugin-host.js';

function update(dispatcher: HookDispatcher, request: JsonObject) {
  return runHook(dispatcher, 'preEntityUpdate', alice, request, context('preEntityUpdate'));
}

/** Asserts a KeyholdError with `code` whose message names the plugin, the hook and `reason`. */
function failsWith(code: ErrorCode, plugin: string, reason: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof KeyholdError, `expected a KeyholdError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, new RegExp(`plugin "${plugin}" .* in preEntityUpdate: `));
    assert.match(err.message, reason);
    return true;
  };
}

async function loadFailure(t: Parameters<typeof startHost>[0], source: FixtureName, raw: Record<string, unknown> = {}) {
  const dir = pluginDir(t, { broken: source });
  const { host, logs } = createHost(t, dir, raw);
  const err = await host.start().then(
    () => assert.fail('start should have failed'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof PluginLoadError);
  assert.equal(err.failures.length, 1);
  assert.equal(err.failures[0]!.name, 'broken');
  assert.deepEqual(host.status(), [], 'nothing of a failed start is left serving');
  return { reason: err.failures[0]!.reason, logs };
}

describe('plugins that cannot be loaded', () => {
  it('exits during start: the reason has the exit code and the head and tail of its stderr', async (t) => {
    const { reason, logs } = await loadFailure(t, 'exits-during-start');
    assert.match(reason, /exited with code 3 before completing the handshake/);
    assert.match(
      reason,
      /its stderr: cannot start: the frobnicator library is missing \| at frame 1 \| .* \| at frame 4 \| \(3 more\) \| at frame 8 \| .* \| at frame 12$/,
    );
    assert.ok(logs.find((r) => r.level === 50 && r.plugin === 'broken' && /could not be loaded: .*exited with code 3/.test(r.msg)));
  });

  it('never answers initialize: refused at the start timeout, and killed', async (t) => {
    const started = Date.now();
    const { reason } = await loadFailure(t, 'never-initializes', { startTimeout: '300ms' });
    assert.match(reason, /did not complete the handshake within 300 ms \(start timeout\)/);
    assert.ok(Date.now() - started < 3000);
  });

  it('speaks another protocol version: the reason names both sides', async (t) => {
    const { reason } = await loadFailure(t, 'future-protocol');
    assert.match(reason, /^protocol mismatch: no protocol version in common: the host speaks 1, the plugin speaks 2/);
  });

  it("rejects its config: the reason is the plugin's message", async (t) => {
    const { reason } = await loadFailure(t, 'faulty', { plugins: { broken: { config: { reject: true } } } });
    assert.equal(reason, 'config rejected: config.reject is set, so this config is refused');
  });
});

describe('plugins that misbehave in a hook', () => {
  it("a veto fails the request with 422 and the plugin's message, and is never skipped", async (t) => {
    const { host } = await startHost(t, { faulty: 'faulty' }, { plugins: { faulty: { failureMode: 'open' } } });
    const before = host.status()[0]!;
    await assert.rejects(
      update(host.dispatcher, { fault: 'veto' }),
      failsWith('KH_ERR_PLUGIN_VETO', 'faulty', /display names may not be changed today$/),
    );
    const after = host.status()[0]!;
    assert.equal(after.state, 'ready');
    assert.equal(after.pid, before.pid);
    assert.equal(after.restarts, 0);
  });

  it('a thrown error is a plugin failure (502) with its message; the plugin logs it and keeps running', async (t) => {
    const { host, logs } = await startHost(t, { faulty: 'faulty' });
    await assert.rejects(update(host.dispatcher, { fault: 'throw' }), failsWith('KH_ERR_PLUGIN_FAILED', 'faulty', /bug in the plugin/));
    await logs.waitFor((r) => r.plugin === 'faulty' && r.level === 50 && r.msg === 'preEntityUpdate failed');
    assert.equal(host.status()[0]!.state, 'ready');
  });

  it('process.exit in a hook fails the call at once, and the plugin is restarted', async (t) => {
    const { host, logs } = await startHost(t, { faulty: 'faulty' }, { callTimeout: '20s' });
    const firstPid = host.status()[0]!.pid;
    const started = Date.now();
    await assert.rejects(update(host.dispatcher, { fault: 'exit' }), failsWith('KH_ERR_PLUGIN_FAILED', 'faulty', /exited with code 7/));
    assert.ok(Date.now() - started < 5000, 'failed when the process died, not at the 20 s timeout');
    const ready = await waitForState(host, 'faulty', 'ready');
    assert.notEqual(ready.pid, firstPid);
    assert.equal(ready.restarts, 1);
    assert.match(ready.lastError ?? '', /exited with code 7/);
    assert.ok(
      logs.find((r) => r.plugin === 'faulty' && r.level === 50 && /plugin crashed, restarting in \d+ ms: .*exited with code 7/.test(r.msg)),
    );
    assert.equal((await update(host.dispatcher, {})).meta.displayName, 'Alice+faulty');
  });

  it("a hang times out with 504 and the call is cancelled, aborting the hook's signal; the plugin keeps serving", async (t) => {
    const { host, logs } = await startHost(t, { faulty: 'faulty' }, { plugins: { faulty: { timeout: '200ms' } } });
    await assert.rejects(
      update(host.dispatcher, { fault: 'hang' }),
      failsWith('KH_ERR_PLUGIN_TIMEOUT', 'faulty', /no answer within 200 ms/),
    );
    const aborted = await logs.waitFor((r) => r.plugin === 'faulty' && r.msg === 'hook call aborted');
    assert.match(String(aborted.reason), /the host cancelled preEntityUpdate/);
    assert.equal((await update(host.dispatcher, {})).meta.displayName, 'Alice+faulty');
    assert.equal(host.status()[0]!.restarts, 0);
  });

  it('a timed-out call is cancelled on the wire ($/cancelRequest)', async (t) => {
    const { host, logs } = await startHost(t, { slow: 'cancel-aware' }, { plugins: { slow: { timeout: '200ms' } } });
    await assert.rejects(update(host.dispatcher, {}), failsWith('KH_ERR_PLUGIN_TIMEOUT', 'slow', /no answer within 200 ms/));
    await logs.waitFor((r) => r.plugin === 'slow' && r.msg === 'the host cancelled the hook call');
  });

  it('a plugin that stops answering pings is killed as hung and restarted', async (t) => {
    const { host, logs } = await startHost(t, { faulty: 'faulty' }, { pingInterval: '50ms', plugins: { faulty: { timeout: '200ms' } } });
    await assert.rejects(
      update(host.dispatcher, { fault: 'spin' }),
      failsWith('KH_ERR_PLUGIN_TIMEOUT', 'faulty', /no answer within 200 ms/),
    );
    await waitForState(host, 'faulty', 'restarting');
    const ready = await waitForState(host, 'faulty', 'ready');
    assert.equal(ready.restarts, 1);
    assert.match(ready.lastError ?? '', /hung: no answer to \$\/ping within 200 ms/);
    assert.ok(logs.find((r) => /plugin crashed, restarting .*hung/.test(r.msg)));
  });

  it('garbage on stdout from a plugin without the SDK is a crash, at once', async (t) => {
    const { host, logs } = await startHost(t, { garbage: 'garbage' }, { callTimeout: '20s' });
    const started = Date.now();
    await assert.rejects(
      update(host.dispatcher, {}),
      failsWith('KH_ERR_PLUGIN_FAILED', 'garbage', /wrote bytes that are not a JSON-RPC message: "debug: got a hook call/),
    );
    assert.ok(Date.now() - started < 5000);
    await waitForState(host, 'garbage', 'ready');
    assert.ok(logs.find((r) => r.plugin === 'garbage' && /plugin crashed, restarting/.test(r.msg)));
  });

  it('stray prints of an SDK plugin never reach the wire: they are logged', async (t) => {
    const { host, logs } = await startHost(t, { faulty: 'faulty' });
    assert.equal((await update(host.dispatcher, { fault: 'print' })).meta.displayName, 'printed');
    await logs.waitFor((r) => r.plugin === 'faulty' && r.msg === 'a stray console.log' && r.stream === 'stderr' && r.level === 40);
    await logs.waitFor((r) => r.plugin === 'faulty' && r.msg === 'a stray stdout write');
    assert.equal(host.status()[0]!.restarts, 0);
  });

  it('one stderr line longer than a pipe read is one record, cut at 8 KiB and marked truncated', async (t) => {
    const { host, logs } = await startHost(t, { faulty: 'faulty' });
    await update(host.dispatcher, { fault: 'long-stderr' });
    await logs.waitFor((r) => r.plugin === 'faulty' && r.msg === 'the line after the long one');
    const records = logs.records.filter((r) => r.plugin === 'faulty' && r.stream === 'stderr');
    assert.deepEqual(
      records.map((r) => [r.msg.length, r.truncated]),
      [
        [8 * 1024, true],
        ['the line after the long one'.length, undefined],
      ],
    );
    assert.equal(records[0]!.msg, 'x'.repeat(8 * 1024));
  });

  it('a changed id is an invalid result (502) naming the field', async (t) => {
    const { host } = await startHost(t, { faulty: 'faulty' });
    await assert.rejects(
      update(host.dispatcher, { fault: 'change-id' }),
      failsWith('KH_ERR_PLUGIN_INVALID_RESULT', 'faulty', /it changed id, which plugins may not change/),
    );
    assert.equal(host.status()[0]!.state, 'ready');
  });

  it('a hook returning nothing is a plugin failure (502) saying what to return, not an unchanged object', async (t) => {
    const { host } = await startHost(t, { faulty: 'faulty' });
    await assert.rejects(
      update(host.dispatcher, { fault: 'no-return' }),
      failsWith('KH_ERR_PLUGIN_FAILED', 'faulty', /preEntityUpdate returned undefined: return the object it was given, changed or not/),
    );
    assert.equal(host.status()[0]!.state, 'ready');
  });

  it('a 10 MB result is over the message limit: a crash, and a restart', async (t) => {
    const { host } = await startHost(t, { faulty: 'faulty' });
    await assert.rejects(
      update(host.dispatcher, { fault: 'huge' }),
      failsWith('KH_ERR_PLUGIN_FAILED', 'faulty', /sent a message of \d+ bytes, over the 4194304-byte limit/),
    );
    assert.equal((await waitForState(host, 'faulty', 'ready')).restarts, 1);
  });

  it('crashing again and again: after 5 crashes in the window it is failed, stays down, and requests get 503', async (t) => {
    const { host, logs } = await startHost(t, { looper: 'crash-loop' }, { restart: { maxCrashes: 5 } });
    const failed = await waitForState(host, 'looper', 'failed');
    assert.equal(failed.restarts, 4);
    assert.match(failed.lastError ?? '', /exited with code 1/);
    assert.ok(logs.find((r) => r.level === 50 && /plugin crashed 5 times within 60000 ms; it stays down until a reload/.test(r.msg)));
    await assert.rejects(
      update(host.dispatcher, {}),
      failsWith('KH_ERR_PLUGIN_UNAVAILABLE', 'looper', /has failed and stays down until a reload/),
    );
  });

  it('failureMode open skips a crashed plugin with a warning and a counter', async (t) => {
    const { host, logs, registry } = await startHost(
      t,
      { faulty: 'faulty', recorder: 'recorder' },
      { plugins: { faulty: { failureMode: 'open' } } },
    );
    const result = await update(host.dispatcher, { fault: 'exit' });
    assert.equal(result.meta.displayName, 'Alice');
    assert.ok(
      logs.find(
        (r) =>
          r.level === 40 && /skipped plugin "faulty" in preEntityUpdate because its failureMode is open: .*exited with code 7/.test(r.msg),
      ),
    );
    assert.match(await registry.metrics(), /keyhold_plugin_failopen_skips_total\{plugin="faulty",hook="preEntityUpdate"\} 1/);
  });
});
