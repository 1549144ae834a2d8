// The plugin host with real plugin processes: loading and status, calling only implemented
// hooks, ordering, logs, the friendly message when run by hand, shutdown, verify, metrics, and
// no orphan when the host itself is SIGKILLed.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HOOKS, MAGIC_COOKIE_VALUE, type HookContext } from 'keyhold-plugin-sdk';
import { PluginLoadError } from '../../src/host/host.js';
import { pluginEnvironment, TEST_RUN_ENV } from '../../src/host/process.js';
import { verifyPlugins } from '../../src/host/verify.js';
import { runHook } from '../../src/lifecycle/chain.js';
import {
  alice,
  context,
  createHost,
  fixture,
  pluginDir,
  processGone,
  staff,
  startHost,
  testSettings,
  waitForExit,
} from '../fixtures/plugin-host.js';

describe('loading and calling plugins', () => {
  it('starts every plugin and reports name, state, pid, version, hooks, order, failure mode, mode, verify and actions', async (t) => {
    const { host } = await startHost(
      t,
      { rec: 'recorder', faulty: 'faulty' },
      { plugins: { faulty: { order: 5, failureMode: 'open', mode: 'shadow' } } },
    );
    const [first, second] = host.status();
    assert.deepEqual(
      { ...first, pid: typeof first!.pid },
      {
        name: 'faulty',
        path: first!.path,
        state: 'ready',
        pid: 'number',
        version: '0.0.0',
        hooks: ['preEntityUpdate'],
        restarts: 0,
        lastError: null,
        failureMode: 'open',
        mode: 'shadow',
        order: 5,
        verify: null,
        actions: [],
      },
    );
    assert.equal(second!.name, 'rec');
    assert.equal(second!.version, '1.2.3');
    assert.deepEqual(second!.hooks, ['preEntityCreate', 'postGroupUpdate']);
    assert.equal(second!.failureMode, 'closed');
    assert.equal(second!.mode, 'enforce');
    assert.equal(second!.order, 100);
  });

  it('a plugin implementing two hooks receives zero calls for the other 22', async (t) => {
    const { host } = await startHost(t, { rec: 'recorder' });
    const dispatcher = host.dispatcher;
    const routed = HOOKS.filter((h) => dispatcher.handlersFor(h.name).length > 0).map((h) => h.name);
    assert.deepEqual(routed, ['preEntityCreate', 'postGroupUpdate']);
    for (const hook of HOOKS) {
      if (hook.subject === 'entity') await runHook(dispatcher, hook.name, alice, {}, context(hook.name));
      else await runHook(dispatcher, hook.name, staff, {}, context(hook.name));
    }
    // The plugin's own record of every call it got.
    const ctx: HookContext = context('preEntityCreate');
    await runHook(dispatcher, 'preEntityCreate', alice, {}, ctx);
    assert.deepEqual(ctx.state.seen, ['preEntityCreate', 'postGroupUpdate', 'preEntityCreate']);
  });

  it('an unchanged object is not sent back (the host keeps its own); one changed in place is', async (t) => {
    const { host } = await startHost(t, { rec: 'recorder', faulty: 'faulty' });
    // recorder's postGroupUpdate returns its subject as it came.
    assert.equal(await runHook(host.dispatcher, 'postGroupUpdate', staff, {}, context('postGroupUpdate')), staff);
    const changed = await runHook(host.dispatcher, 'preEntityUpdate', alice, { fault: 'in-place' }, context('preEntityUpdate'));
    assert.equal(changed.meta.displayName, 'changed in place');
    assert.equal(alice.meta.displayName, 'Alice', "the host's object itself is untouched");
  });

  it("calls plugins by order, then by name, each output the next one's input", async (t) => {
    const { host } = await startHost(
      t,
      { a: 'recorder', b: 'recorder', c: 'recorder' },
      {
        plugins: {
          a: { order: 20, config: { tag: '-a' } },
          b: { order: 20, config: { tag: '-b' } },
          c: { order: 10, config: { tag: '-c' } },
        },
      },
    );
    assert.deepEqual(
      host.dispatcher.handlersFor('preEntityCreate').map((h) => h.plugin),
      ['c', 'a', 'b'],
    );
    assert.equal(
      (await runHook(host.dispatcher, 'preEntityCreate', alice, {}, context('preEntityCreate'))).meta.displayName,
      'Alice-c-a-b',
    );
  });

  it('logs plugin records with the plugin name and pid at their own level', async (t) => {
    const { host, logs } = await startHost(t, { faulty: 'faulty' });
    await runHook(host.dispatcher, 'preEntityUpdate', alice, { fault: 'log' }, context('preEntityUpdate'));
    const record = await logs.waitFor((r) => r.msg === 'a record from the plugin logger');
    assert.equal(record.level, 40);
    assert.equal(record.plugin, 'faulty');
    assert.equal(record.pid, host.status()[0]!.pid);
    assert.equal(record.detail, 42);
  });

  it('passes the plugin a minimal environment: the cookie, no host secrets', async (t) => {
    process.env.KEYHOLD_TEST_SECRET = 'do-not-leak';
    t.after(() => delete process.env.KEYHOLD_TEST_SECRET);
    const { host } = await startHost(t, { rec: 'recorder' });
    const environ = readFileSync(`/proc/${host.status()[0]!.pid}/environ`, 'latin1').split('\0').filter(Boolean);
    const names = environ.map((e) => e.slice(0, e.indexOf('='))).sort();
    assert.ok(names.includes('KEYHOLD_PLUGIN_MAGIC_COOKIE'));
    for (const name of names)
      assert.ok(['KEYHOLD_PLUGIN_MAGIC_COOKIE', 'PATH', 'HOME', 'LANG', 'TZ', TEST_RUN_ENV].includes(name), `unexpected variable ${name}`);
    assert.equal(names.includes(TEST_RUN_ENV), process.env[TEST_RUN_ENV] !== undefined, 'the test run marker only when the host has it');
  });

  it("passes the test run marker on only when the host's environment has it", () => {
    const host = { PATH: '/usr/bin', KEYHOLD_TEST_SECRET: 'do-not-leak' };
    assert.deepEqual(pluginEnvironment(host), { KEYHOLD_PLUGIN_MAGIC_COOKIE: MAGIC_COOKIE_VALUE, PATH: '/usr/bin' });
    assert.deepEqual(pluginEnvironment({ ...host, [TEST_RUN_ENV]: 'run-1' }), {
      KEYHOLD_PLUGIN_MAGIC_COOKIE: MAGIC_COOKIE_VALUE,
      PATH: '/usr/bin',
      [TEST_RUN_ENV]: 'run-1',
    });
  });

  it('a plugin run by hand without the cookie says what it is and exits 1', async () => {
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(fixture('faulty'), [], { env: { PATH: process.env.PATH } }, (err, _stdout, stderr) =>
        resolve({ code: err ? (err.code as number) : 0, stderr }),
      );
    });
    assert.equal(code, 1);
    assert.match(
      stderr,
      /This is a keyhold plugin\. It is started by the keyhold server, not run directly: drop it into the server's plugin directory\./,
    );
  });

  it('skips hidden and non-executable files in the directory', async (t) => {
    const dir = pluginDir(t, { rec: 'recorder' });
    writeFileSync(join(dir, 'README.md'), 'not a plugin');
    writeFileSync(join(dir, '.hidden.js'), '#!/bin/sh\n');
    chmodSync(join(dir, '.hidden.js'), 0o755);
    const { host, logs } = createHost(t, dir);
    await host.start();
    assert.deepEqual(
      host.status().map((s) => s.name),
      ['rec'],
    );
    assert.ok(logs.find((r) => r.level === 20 && r.msg === 'plugin discovery: skipping hidden file'));
    assert.ok(logs.find((r) => r.level === 20 && r.msg === 'plugin discovery: skipping file' && /not executable/.test(String(r.reason))));
  });
});

describe('stopping plugins', () => {
  it('stop sends shutdown and the plugin exits cleanly; calls afterwards are unavailable', async (t) => {
    const { host, logs } = await startHost(t, { rec: 'recorder' });
    const pid = host.status()[0]!.pid!;
    await host.stop();
    assert.ok(processGone(pid));
    const stopped = logs.find((r) => r.msg === 'plugin stopped');
    assert.deepEqual(stopped?.exit, { code: 0, signal: null });
    assert.equal(host.status()[0]!.state, 'stopped');
    await assert.rejects(runHook(host.dispatcher, 'preEntityCreate', alice, {}, context('preEntityCreate')), {
      code: 'KH_ERR_PLUGIN_UNAVAILABLE',
    });
  });

  it('a plugin that ignores shutdown and SIGTERM is SIGKILLed after two grace periods', async (t) => {
    const { host, logs } = await startHost(t, { faulty: 'faulty' }, { shutdownGrace: '200ms', plugins: { faulty: { timeout: '100ms' } } });
    await assert.rejects(runHook(host.dispatcher, 'preEntityUpdate', alice, { fault: 'stubborn' }, context('preEntityUpdate')), {
      code: 'KH_ERR_PLUGIN_TIMEOUT',
    });
    const started = Date.now();
    await host.stop();
    assert.ok(Date.now() - started >= 400, 'waited for the shutdown answer and for SIGTERM');
    assert.deepEqual(logs.find((r) => r.msg === 'plugin stopped')?.exit, { code: null, signal: 'SIGKILL' });
  });

  it('leaves no orphan when the host itself is SIGKILLed: the plugin exits when its stdin closes', async (t) => {
    const dir = pluginDir(t, { rec: 'recorder', faulty: 'faulty' });
    const hostProcess = spawn(process.execPath, [fileURLToPath(new URL('../fixtures/host-process.js', import.meta.url)), dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    t.after(() => hostProcess.kill('SIGKILL'));
    const [line] = (await once(hostProcess.stdout, 'data')) as [Buffer];
    const pids = JSON.parse(line.toString()) as number[];
    assert.equal(pids.length, 2);
    hostProcess.kill('SIGKILL');
    await once(hostProcess, 'exit');
    for (const pid of pids) await waitForExit(pid);
  });

  it('ends the plugins when the host exits without stopping them, also one that ignores its stdin closing', async (t) => {
    const dir = pluginDir(t, { stubborn: 'ignores-stdin-close' });
    const hostProcess = spawn(process.execPath, [fileURLToPath(new URL('../fixtures/host-process.js', import.meta.url)), dir, 'exit'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    t.after(() => hostProcess.kill('SIGKILL'));
    const [line] = (await once(hostProcess.stdout, 'data')) as [Buffer];
    const [pid] = JSON.parse(line.toString()) as number[];
    t.after(() => processGone(pid!) || process.kill(pid!, 'SIGKILL'));
    await once(hostProcess, 'exit');
    await waitForExit(pid!);
  });
});

describe('checks before and around running plugins', () => {
  it('refuses a file whose sha256 differs from the pin before running it, and runs it when it matches', async (t) => {
    const dir = pluginDir(t, { rec: 'recorder' });
    const wrong = 'ab'.repeat(32);
    const { host } = createHost(t, dir, { plugins: { rec: { sha256: wrong } } });
    const err = await host.start().catch((e: unknown) => e);
    assert.ok(err instanceof PluginLoadError);
    assert.match(
      err.failures[0]!.reason,
      new RegExp(`^checksum mismatch: the settings pin sha256 ${wrong}, the file has [0-9a-f]{64}; refusing to run it$`),
    );
    const right = createHash('sha256')
      .update(readFileSync(fixture('recorder')))
      .digest('hex');
    const pinned = createHost(t, dir, { plugins: { rec: { sha256: right } } });
    await pinned.host.start();
    assert.equal(pinned.host.status()[0]!.state, 'ready');
  });

  it('verify reports each plugin: ok with name, version and hooks, or the exact reason', async (t) => {
    const dir = pluginDir(t, { good: 'recorder', dies: 'exits-during-start', future: 'future-protocol', picky: 'faulty' });
    writeFileSync(join(dir, 'README.md'), 'skipped in a directory');
    const notExecutable = join(dir, 'README.md');
    const results = await verifyPlugins([dir, notExecutable], testSettings({ plugins: { picky: { config: { reject: true } } } }));
    const byName = Object.fromEntries(results.map((r) => [r.name, r]));
    assert.deepEqual(Object.keys(byName).sort(), ['README', 'dies', 'future', 'good', 'picky']);
    assert.deepEqual(byName.good, {
      ok: true,
      name: 'good',
      path: join(dir, 'good.js'),
      version: '1.2.3',
      hooks: ['preEntityCreate', 'postGroupUpdate'],
      selfChecked: false, // the recorder has no selfCheck(): the SDK answers method not found
    });
    const reason = (name: string) => (byName[name]?.ok === false ? byName[name].reason : 'ok');
    assert.match(reason('dies'), /exited with code 3 before completing the handshake/);
    assert.match(reason('future'), /protocol mismatch: .*the host speaks 1, the plugin speaks 2/);
    assert.match(reason('picky'), /^config rejected: config\.reject is set/);
    assert.equal(reason('README'), 'not executable (chmod +x it)');
  });

  it('exposes calls, vetoes, errors, timeouts, latency, restarts and up in Prometheus text', async (t) => {
    const { host, registry } = await startHost(t, { faulty: 'faulty' }, { plugins: { faulty: { timeout: '200ms' } } });
    await runHook(host.dispatcher, 'preEntityUpdate', alice, {}, context('preEntityUpdate'));
    await assert.rejects(runHook(host.dispatcher, 'preEntityUpdate', alice, { fault: 'veto' }, context('preEntityUpdate')));
    await assert.rejects(runHook(host.dispatcher, 'preEntityUpdate', alice, { fault: 'hang' }, context('preEntityUpdate')));
    await assert.rejects(runHook(host.dispatcher, 'preEntityUpdate', alice, { fault: 'throw' }, context('preEntityUpdate')));
    const text = await registry.metrics();
    const labels = 'plugin="faulty",hook="preEntityUpdate"';
    assert.match(text, new RegExp(`keyhold_plugin_calls_total\\{${labels}\\} 4`));
    assert.match(text, new RegExp(`keyhold_plugin_vetoes_total\\{${labels}\\} 1`));
    assert.match(text, new RegExp(`keyhold_plugin_timeouts_total\\{${labels}\\} 1`));
    assert.match(text, new RegExp(`keyhold_plugin_errors_total\\{${labels},kind="crash"\\} 1`));
    assert.match(text, new RegExp(`keyhold_plugin_call_duration_seconds_count\\{${labels}\\} 4`));
    assert.match(text, /keyhold_plugin_up\{plugin="faulty"\} 1/);
    assert.match(text, /# TYPE keyhold_plugin_restarts_total counter/);
  });
});
