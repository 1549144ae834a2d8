// `keyhold serve` refusing to start: a port in use, a data directory that cannot be made, a plugin
// that rejects its config. Each is a bad configuration (exit 2) named by its setting, found before
// anything lasting happens (no store file, no root secret printed).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fixture } from '../fixtures/plugin-host.js';
import { expectCode, killChildren, runCli, scratchDir, serverEnv, startServerProcess } from '../support/keyhold.js';

after(killChildren);

/** A TCP server holding a loopback port, like another program would. */
async function occupiedPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  return { port: (server.address() as AddressInfo).port, server };
}

describe('keyhold serve starting', () => {
  it('logs one start line: where it listens (the chosen port for port 0), with how many plugins', async () => {
    const server = await startServerProcess(serverEnv(join(scratchDir('start-line'), 'data')));
    try {
      const starts = server
        .stdout()
        .split('\n')
        .filter((l) => /listening/i.test(l));
      assert.equal(starts.length, 1, starts.join('\n'));
      assert.match(starts[0]!, new RegExp(`"msg":"keyhold listening on ${server.url.replace(/[.]/g, '\\.')} with 0 plugin\\(s\\)`));
    } finally {
      await server.stop();
    }
  });
});

describe('keyhold serve refuses a bad start with exit 2 and the setting to change', () => {
  it('a port in use: refused before the store is created or a root secret printed', async () => {
    const { port, server } = await occupiedPort();
    try {
      const dataDir = join(scratchDir('start-port'), 'data');
      const result = expectCode(await runCli(['serve'], { ...serverEnv(dataDir), KEYHOLD_PORT: String(port) }), 2, 'port in use');
      assert.match(result.stderr, new RegExp(`bad configuration: .*listen \\(KEYHOLD_LISTEN.*127\\.0\\.0\\.1:${port} is already in use`));
      assert.doesNotMatch(result.stdout, /shown only this once/);
      assert.equal(existsSync(join(dataDir, 'keyhold.sqlite')), false, 'no store was created');
    } finally {
      server.close();
    }
  });

  it('a data directory that is a file, or below one, names dataDir', async () => {
    const base = scratchDir('start-data');
    const file = join(base, 'a-file');
    writeFileSync(file, 'not a directory');
    for (const dataDir of [file, join(file, 'data')]) {
      const result = expectCode(await runCli(['serve'], serverEnv(dataDir)), 2, `data dir ${dataDir}`);
      assert.match(result.stderr, /bad configuration: .*dataDir \(KEYHOLD_DATA_DIR\): .*(is not a directory|is a file)/);
    }
  });

  it('a plugin that rejects its config is a bad configuration too', async () => {
    const dir = scratchDir('start-plugin');
    const plugins = join(dir, 'plugins');
    mkdirSync(plugins);
    symlinkSync(fixture('faulty'), join(plugins, 'faulty.js'));
    const config = join(dir, 'keyhold.yaml');
    writeFileSync(config, 'plugins:\n  plugins:\n    faulty:\n      config:\n        reject: true\n');
    const result = expectCode(
      await runCli(['serve', '--config', config], { ...serverEnv(join(dir, 'data')), KEYHOLD_PLUGIN_DIR: plugins }),
      2,
      'plugin rejects config',
    );
    assert.match(result.stderr, /bad configuration: .*faulty.*config rejected: config\.reject is set/);
  });
});
