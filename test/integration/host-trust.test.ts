// The trusted plugin directory: a plugin directory, plugin file or symlink target that another
// user could change is refused at start, at reload, by verify and right before every (re)start;
// the dangerous opt-out loads it with a warning. Ownership cases chown to another uid (needs root).
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { PluginLoadError } from '../../src/host/host.js';
import { verifyPlugins } from '../../src/host/verify.js';
import { createHost, fixture, pluginDir, processGone, testSettings, waitForExit, waitForState } from '../fixtures/plugin-host.js';

const OTHER_UID = 1234;
const asRoot = process.getuid?.() === 0;

/** A plugin file of our own (a shell wrapper around the recorder fixture) that appends a line to `runs` each time it is started. */
function wrapper(dir: string, name: string): { path: string; runs: string } {
  const path = join(dir, name);
  const runs = join(dir, `.${name}.runs`);
  writeFileSync(path, `#!/bin/sh\necho run >> '${runs}'\nexec '${fixture('recorder')}'\n`, { mode: 0o755 });
  return { path, runs };
}

function runCount(runs: string): number {
  try {
    return readFileSync(runs, 'utf8').split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
}

/** Starting a host over `dir` fails; returns the one failure. */
async function refusedAtStart(t: TestContext, dir: string) {
  const { host } = createHost(t, dir);
  const err = await host.start().catch((e: unknown) => e);
  assert.ok(err instanceof PluginLoadError, `expected a PluginLoadError, got ${String(err)}`);
  assert.equal(err.failures.length, 1, JSON.stringify(err.failures));
  return err.failures[0]!;
}

describe('plugin files the server trusts', () => {
  it('refuses a world-writable plugin directory, naming it, the mode and the fix', async (t) => {
    const dir = pluginDir(t, { rec: 'recorder' });
    chmodSync(dir, 0o777);
    const failure = await refusedAtStart(t, dir);
    assert.equal(failure.path, dir);
    assert.match(
      failure.reason,
      /^untrusted: the plugin directory .* is writable by group and others \(mode 0777\): another user could put a program there/,
    );
    assert.ok(
      failure.reason.includes(
        `fix: chmod go-w ${dir} (or, only if every local user may run programs as the server's user, set plugins.allowUntrustedFiles: true)`,
      ),
      failure.reason,
    );
  });

  it('refuses a group-writable plugin directory', async (t) => {
    const dir = pluginDir(t, { rec: 'recorder' });
    chmodSync(dir, 0o775);
    assert.match((await refusedAtStart(t, dir)).reason, /is writable by group \(mode 0775\)/);
  });

  it('refuses a group- or world-writable plugin file, and runs it once fixed', async (t) => {
    const dir = pluginDir(t, {});
    const { path, runs } = wrapper(dir, 'rec');
    chmodSync(path, 0o757);
    const failure = await refusedAtStart(t, dir);
    assert.equal(failure.name, 'rec');
    assert.ok(failure.reason.includes(`${path} is writable by others (mode 0757)`), failure.reason);
    assert.ok(failure.reason.includes(`fix: chmod go-w ${path}`), failure.reason);
    chmodSync(path, 0o775);
    assert.match((await refusedAtStart(t, dir)).reason, /is writable by group \(mode 0775\)/);
    assert.equal(runCount(runs), 0, 'never run');
    chmodSync(path, 0o755);
    const { host } = createHost(t, dir);
    await host.start();
    assert.equal(runCount(runs), 1);
  });

  it('refuses a plugin file owned by another user', { skip: !asRoot && 'needs root to chown a file to another uid' }, async (t) => {
    const dir = pluginDir(t, {});
    const { path, runs } = wrapper(dir, 'rec');
    chownSync(path, OTHER_UID, OTHER_UID);
    const failure = await refusedAtStart(t, dir);
    assert.ok(failure.reason.includes(`${path} is owned by uid ${OTHER_UID}, not by root or the server's user (uid 0)`), failure.reason);
    assert.ok(failure.reason.includes(`fix: chown root ${path}`), failure.reason);
    assert.equal(runCount(runs), 0);
  });

  it(
    'refuses a plugin directory owned by another user',
    { skip: !asRoot && 'needs root to chown a directory to another uid' },
    async (t) => {
      const dir = pluginDir(t, { rec: 'recorder' });
      chownSync(dir, OTHER_UID, OTHER_UID);
      assert.match((await refusedAtStart(t, dir)).reason, new RegExp(`the plugin directory .* is owned by uid ${OTHER_UID}`));
    },
  );

  it('refuses a symlink from the trusted directory to a file in a world-writable directory', async (t) => {
    const dir = pluginDir(t, {});
    const elsewhere = mkdtempSync(join(tmpdir(), 'keyhold-elsewhere-'));
    t.after(() => rmSync(elsewhere, { recursive: true, force: true }));
    const { path: target, runs } = wrapper(elsewhere, 'rec');
    chmodSync(elsewhere, 0o777);
    symlinkSync(target, join(dir, 'rec'));
    const failure = await refusedAtStart(t, dir);
    assert.ok(
      failure.reason.includes(
        `${join(dir, 'rec')} leads (through symlinks) to ${target}, and ${elsewhere} is writable by group and others (mode 0777)`,
      ),
      failure.reason,
    );
    assert.equal(runCount(runs), 0);
  });

  it('follows every hop: a link to a link living in a world-writable directory is refused', async (t) => {
    const dir = pluginDir(t, {});
    const hop = mkdtempSync(join(tmpdir(), 'keyhold-hop-'));
    t.after(() => rmSync(hop, { recursive: true, force: true }));
    symlinkSync(fixture('recorder'), join(hop, 'rec.js'));
    chmodSync(hop, 0o777);
    symlinkSync(join(hop, 'rec.js'), join(dir, 'rec.js'));
    assert.match(
      (await refusedAtStart(t, dir)).reason,
      /leads \(through symlinks\) to .*keyhold-hop-.*rec\.js, and .*keyhold-hop-\w+ is writable by group and others/,
    );
  });

  it('checks again right before every restart: a file made writable after the start never runs again', async (t) => {
    const dir = pluginDir(t, {});
    const { path, runs } = wrapper(dir, 'rec');
    const { host } = createHost(t, dir, { restart: { maxCrashes: 2 } });
    await host.start();
    const pid = host.status()[0]!.pid!;
    chmodSync(path, 0o777);
    process.kill(pid, 'SIGKILL');
    await waitForExit(pid);
    const failed = await waitForState(host, 'rec', 'failed');
    assert.match(failed.lastError ?? '', /^restart failed: untrusted: .* is writable by group and others \(mode 0777\)/);
    assert.equal(runCount(runs), 1, 'only the first start ran it');
    assert.ok(processGone(pid));
  });

  it('reload refuses an untrusted set and keeps the old one serving', async (t) => {
    const dir = pluginDir(t, { rec: 'recorder' });
    const { host } = createHost(t, dir);
    await host.start();
    const before = host.status();
    chmodSync(dir, 0o777);
    const result = await host.reload();
    assert.equal(result.swapped, false);
    assert.match(result.failures[0]!.reason, /the plugin directory .* is writable by group and others/);
    assert.deepEqual(host.status(), before);
  });

  it('verify reports the reason for an untrusted directory and an untrusted listed file', async (t) => {
    const dir = pluginDir(t, { rec: 'recorder' });
    const other = pluginDir(t, {});
    const { path } = wrapper(other, 'listed');
    chmodSync(path, 0o777);
    chmodSync(dir, 0o777);
    const results = await verifyPlugins([dir, path], testSettings());
    assert.deepEqual(
      results.map((r) => [r.path, r.ok]).sort(),
      [
        [dir, false],
        [path, false],
      ].sort(),
    );
    for (const r of results) assert.match(r.ok ? '' : r.reason, /^untrusted: .* is writable by group and others \(mode 0777\)/);
  });

  it('plugins.allowUntrustedFiles: true loads them anyway, with a warning', async (t) => {
    const dir = pluginDir(t, {});
    const { path } = wrapper(dir, 'rec');
    chmodSync(path, 0o777);
    chmodSync(dir, 0o777);
    const { host, logs } = createHost(t, dir, { allowUntrustedFiles: true });
    await host.start();
    assert.deepEqual(
      host.status().map((s) => [s.name, s.state]),
      [['rec', 'ready']],
    );
    assert.ok(logs.find((r) => r.level === 40 && /^DANGEROUS: plugins\.allowUntrustedFiles is true/.test(r.msg)));
  });
});
