// The initial root secret: KEYHOLD_BOOTSTRAP leaves the server's environment once read (no plugin
// inherits it), KEYHOLD_BOOTSTRAP_FILE bootstraps from a file only the server's user can read,
// and either one left in place after the first start is warned about.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { ConfigError } from '../../src/config.js';
import { startServer, type ServerHandle } from '../../src/server.js';
import { CapturedLogs, fixture } from '../fixtures/plugin-host.js';
import { call, CLI, login, scratchDir, serverEnv } from '../support/keyhold.js';

const asRoot = process.getuid?.() === 0;

async function start(
  t: TestContext,
  env: NodeJS.ProcessEnv | undefined,
  logs = new CapturedLogs('info'),
): Promise<{ handle: ServerHandle; printed: string[]; logs: CapturedLogs }> {
  const printed: string[] = [];
  const handle = await startServer({ ...(env && { env }), logger: logs.logger, print: (text) => printed.push(text) });
  t.after(() => handle.close());
  return { handle, printed, logs };
}

/** The error a start fails with; a server that starts anyway is closed (so a failing test cannot hang) and fails the test. */
async function refusedStart(env: NodeJS.ProcessEnv, print?: (text: string) => void): Promise<unknown> {
  const outcome = await startServer({ env, logger: new CapturedLogs().logger, ...(print && { print }) }).then(
    (handle) => handle,
    (err: unknown) => ({ err }),
  );
  if ('close' in outcome) {
    await outcome.close();
    assert.fail('the server started');
  }
  return outcome.err;
}

function bootstrapFile(dir: string, text: string, mode: number): string {
  const file = join(dir, 'bootstrap');
  writeFileSync(file, text);
  chmodSync(file, mode);
  return file;
}

describe('KEYHOLD_BOOTSTRAP', () => {
  it("is removed from the server's own environment once read, and a plugin never sees it", async (t) => {
    const dataDir = scratchDir('boot-env');
    const pluginDir = join(dataDir, 'plugins');
    mkdirSync(pluginDir);
    symlinkSync(fixture('recorder'), join(pluginDir, 'rec.js'));
    // As `keyhold serve` runs: the settings and the secret in the process environment itself.
    const settings = serverEnv(join(dataDir, 'data'), { KEYHOLD_PLUGIN_DIR: pluginDir, KEYHOLD_BOOTSTRAP: 'root:env-secret-1' });
    const saved = { ...process.env };
    Object.assign(process.env, settings);
    t.after(() => {
      for (const key of Object.keys(settings)) delete process.env[key];
      Object.assign(process.env, saved);
    });
    const { handle } = await start(t, undefined);
    assert.equal(process.env.KEYHOLD_BOOTSTRAP, undefined, 'gone from process.env');
    const token = await login(handle.url, 'root', 'env-secret-1');
    const { body } = await call(handle.url, 'GET', '/v1/plugins', { token });
    const pid = (body as { plugins: { pid: number }[] }).plugins[0]!.pid;
    const environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
    assert.ok(environ.includes('KEYHOLD_PLUGIN_MAGIC_COOKIE='), "read the plugin's environment");
    assert.ok(
      !environ.includes('KEYHOLD_BOOTSTRAP') && !environ.includes('env-secret-1'),
      "the plugin's environment has no bootstrap secret",
    );
  });

  it('left in place on a store that has entities: a warning says to remove it', async (t) => {
    const dataDir = scratchDir('boot-again');
    const first = await start(t, serverEnv(dataDir, { KEYHOLD_BOOTSTRAP: 'root:pw' }));
    await first.handle.close();
    const { logs } = await start(t, serverEnv(dataDir, { KEYHOLD_BOOTSTRAP: 'root:pw' }));
    const warning = logs.find((r) => r.level === 40 && r.msg.startsWith('KEYHOLD_BOOTSTRAP is set but ignored'));
    assert.match(
      warning?.msg ?? '',
      /Remove it from the service's environment: every process of the server's user \(plugins included\) can read it in \/proc\/\d+\/environ/,
    );
  });

  it('set together with KEYHOLD_BOOTSTRAP_FILE is refused', async () => {
    const dataDir = scratchDir('boot-both');
    const err = await refusedStart(serverEnv(dataDir, { KEYHOLD_BOOTSTRAP: 'root:pw', KEYHOLD_BOOTSTRAP_FILE: join(dataDir, 'x') }));
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /set KEYHOLD_BOOTSTRAP or KEYHOLD_BOOTSTRAP_FILE, not both/);
  });
});

describe('KEYHOLD_BOOTSTRAP_FILE', () => {
  it('bootstraps the first administrator from the file, prints nothing, and warns while the file is left', async (t) => {
    const dataDir = scratchDir('boot-file');
    const file = bootstrapFile(dataDir, 'admin:file-secret-1\n', 0o600);
    const env = serverEnv(join(dataDir, 'data'), { KEYHOLD_BOOTSTRAP_FILE: file });
    const first = await start(t, env);
    assert.deepEqual(first.printed, []);
    await login(first.handle.url, 'admin', 'file-secret-1');
    await first.handle.close();
    const again = await start(t, env);
    assert.ok(
      again.logs.find(
        (r) =>
          r.level === 40 &&
          r.msg ===
            `KEYHOLD_BOOTSTRAP_FILE is ignored: the store already has entities. Delete ${file} (and the variable): it holds the first administrator's secret`,
      ),
    );
  });

  it('refuses a file group or others can read, and creates nothing', async (t) => {
    const dataDir = scratchDir('boot-readable');
    const file = bootstrapFile(dataDir, 'admin:file-secret-2', 0o640);
    const env = serverEnv(join(dataDir, 'data'), { KEYHOLD_BOOTSTRAP_FILE: file });
    const err = await refusedStart(env, () => assert.fail('nothing generated'));
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(
      err.message,
      `KEYHOLD_BOOTSTRAP_FILE: ${file}: the file is readable or writable by group (mode 0640), so other users could read or choose the first administrator's secret; fix: chmod 600 ${file}`,
    );
    chmodSync(file, 0o604);
    assert.match(String(await refusedStart(env)), /readable or writable by others \(mode 0604\)/);
    chmodSync(file, 0o600);
    const { handle } = await start(t, env);
    await login(handle.url, 'admin', 'file-secret-2');
  });

  it('refuses a file owned by another user', { skip: !asRoot && 'needs root to chown a file to another uid' }, async () => {
    const dataDir = scratchDir('boot-owner');
    const file = bootstrapFile(dataDir, 'admin:file-secret-3', 0o600);
    chownSync(file, 1234, 1234);
    const err = await refusedStart(serverEnv(join(dataDir, 'data'), { KEYHOLD_BOOTSTRAP_FILE: file }));
    assert.match(String(err), /the file is owned by uid 1234, not by root or the server's user \(uid 0\).*fix: chown root/);
  });

  it('keyhold serve exits 2 with the reason for an unusable file', async () => {
    const dataDir = scratchDir('boot-serve');
    const file = bootstrapFile(dataDir, 'no colon here', 0o600);
    // Bounded: a server that starts anyway is killed rather than left serving.
    const result = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [CLI, 'serve'],
        { env: { PATH: process.env.PATH, ...serverEnv(join(dataDir, 'data'), { KEYHOLD_BOOTSTRAP_FILE: file }) }, timeout: 30_000 },
        (err, _stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stderr }),
      );
    });
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(`bad configuration: KEYHOLD_BOOTSTRAP_FILE: ${file}: expected id:secret on one line \\(both non-empty\\)`),
    );
  });
});
