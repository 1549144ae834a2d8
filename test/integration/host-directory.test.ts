// The plugin directory setting: a directory configured on purpose must exist (running without it
// would run without the site's policy) and must be a directory; only the default one may be
// missing, with a logged notice.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { PluginHost, PluginLoadError } from '../../src/host/host.js';
import { startServer } from '../../src/server.js';
import { CapturedLogs, createHost, fixture, pluginDir, testSettings } from '../fixtures/plugin-host.js';
import { scratchDir, serverEnv } from '../support/keyhold.js';

async function refusedAtStart(t: TestContext, directory: string): Promise<string> {
  const { host } = createHost(t, directory);
  const err = await host.start().catch((e: unknown) => e);
  assert.ok(err instanceof PluginLoadError, `expected a PluginLoadError, got ${String(err)}`);
  return err.message;
}

describe('the plugin directory setting', () => {
  it('a configured directory that does not exist stops the start, saying what to do', async (t) => {
    const missing = join(pluginDir(t, {}), 'nope');
    const message = await refusedAtStart(t, missing);
    assert.ok(
      message.includes(
        `the configured plugin directory ${missing} does not exist, so none of the site's plugins would run; create it (mkdir -m 755 ${missing}) or correct plugins.directory or KEYHOLD_PLUGIN_DIR`,
      ),
      message,
    );
  });

  it('a missing default directory runs without plugins, with a warning', async (t) => {
    const base = mkdtempSync(join(tmpdir(), 'keyhold-nodir-'));
    t.after(() => rmSync(base, { recursive: true, force: true }));
    const logs = new CapturedLogs();
    const host = new PluginHost({ settings: testSettings(), logger: logs.logger, baseDir: base });
    t.after(() => host.stop());
    await host.start();
    assert.deepEqual(host.status(), []);
    assert.ok(
      logs.find(
        (r) =>
          r.level === 40 && r.msg === 'the plugin directory does not exist: no plugins loaded' && r.directory === join(base, 'plugins'),
      ),
    );
  });

  it('a directory setting that names a file is refused, not taken as a plugin', async (t) => {
    const file = fixture('recorder');
    const message = await refusedAtStart(t, file);
    assert.ok(
      message.includes(
        `names ${file}, which is not a directory; name the directory the plugins are in, or list plugin files in plugins.list`,
      ),
      message,
    );
  });

  it('a reload whose directory has gone keeps the old set serving', async (t) => {
    const dir = pluginDir(t, { rec: 'recorder' });
    const { host } = createHost(t, dir);
    await host.start();
    const result = await host.reload(testSettings({ directory: join(dir, 'gone') }));
    assert.equal(result.swapped, false);
    assert.match(result.failures[0]!.reason, /does not exist/);
    assert.deepEqual(
      result.plugins.map((p) => [p.name, p.state]),
      [['rec', 'ready']],
    );
  });

  it('KEYHOLD_PLUGIN_DIR naming a missing directory stops the server at start', async () => {
    const dataDir = scratchDir('nodir-server');
    const missing = join(dataDir, 'no-such-plugins');
    const err = await startServer({
      env: serverEnv(join(dataDir, 'data'), { KEYHOLD_PLUGIN_DIR: missing }),
      logger: new CapturedLogs().logger,
    }).then(
      async (handle) => {
        await handle.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    assert.ok(err instanceof PluginLoadError, `expected a PluginLoadError, got ${String(err)}`);
    assert.match(err.message, new RegExp(`the configured plugin directory ${missing} does not exist`));
  });
});
