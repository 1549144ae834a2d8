// keyhold plugin verify | list | reload, run as a process: output and exit codes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TEST_RUN_ENV } from '../../src/host/process.js';
import { pluginDir } from '../fixtures/plugin-host.js';

const CLI = fileURLToPath(new URL('../fixtures/plugin-cli.js', import.meta.url));

function keyhold(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { PATH: process.env.PATH, HOME: '/nonexistent', [TEST_RUN_ENV]: process.env[TEST_RUN_ENV], ...env } },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stdout, stderr }),
    );
  });
}

/** A stand-in server answering the two plugin routes; records what it was asked. */
async function fakeServer(t: Parameters<typeof pluginDir>[0], answer: (req: IncomingMessage, res: ServerResponse) => void) {
  const requests: { method?: string; url?: string; authorization?: string }[] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method, url: req.url, authorization: req.headers.authorization });
    res.setHeader('content-type', 'application/json');
    answer(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

const status = {
  name: 'rec',
  path: '/p/rec.js',
  state: 'ready',
  pid: 42,
  version: '1.2.3',
  hooks: ['preEntityCreate'],
  restarts: 0,
  lastError: null,
  failureMode: 'closed',
  mode: 'shadow',
  order: 100,
  verify: { claims: ['marker'], mode: 'also' },
  actions: ['enrol', 'remove'],
};

describe('keyhold plugin', () => {
  it('verify prints ok or the reason for each plugin and exits 1 when any fails', async (t) => {
    const dir = pluginDir(t, { good: 'recorder', picky: 'faulty' });
    const { code, stdout, stderr } = await keyhold(['plugin', 'verify', dir]);
    assert.equal(code, 1);
    assert.match(stdout, /^ok {4}good 1\.2\.3 {2}hooks: preEntityCreate, postGroupUpdate/m);
    assert.match(stdout, /^FAIL {2}picky {2}config rejected: config\.reject is set/m);
    assert.match(stderr, /keyhold: 1 of 2 plugin\(s\) cannot be loaded/);
  });

  it('verify refuses a plugin directory other users can write to, saying how to fix it (exit 1)', async (t) => {
    const dir = pluginDir(t, { good: 'recorder' });
    chmodSync(dir, 0o777);
    const { code, stdout } = await keyhold(['plugin', 'verify', dir]);
    assert.equal(code, 1);
    assert.ok(stdout.includes(`untrusted: the plugin directory ${dir} is writable by group and others (mode 0777)`), stdout);
    assert.ok(stdout.includes(`fix: chmod go-w ${dir}`), stdout);
  });

  it('verify exits 0 when every plugin loads, with --json results', async (t) => {
    const dir = pluginDir(t, { good: 'recorder' });
    const { code, stdout } = await keyhold(['--json', 'plugin', 'verify', dir]);
    assert.equal(code, 0);
    assert.deepEqual(
      JSON.parse(stdout).map((r: { name: string; ok: boolean }) => [r.name, r.ok]),
      [['good', true]],
    );
  });

  it('list asks GET /v1/plugins with the token and prints each plugin', async (t) => {
    const server = await fakeServer(t, (_req, res) => res.end(JSON.stringify({ plugins: [status] })));
    const { code, stdout } = await keyhold(['--server', server.url, 'plugin', 'list'], { KEYHOLD_TOKEN: 'tok' });
    assert.equal(code, 0);
    assert.deepEqual(server.requests, [{ method: 'GET', url: '/v1/plugins', authorization: 'Bearer tok' }]);
    assert.match(stdout, /^PLUGIN +STATE +PID/m);
    assert.match(stdout, /^rec +ready +42 +1\.2\.3 +100 +shadow +closed +0 +preEntityCreate +also: marker +enrol,remove/m);
  });

  it("reload posts to /v1/plugins/reload; a refused reload prints the server's reason and exits 1", async (t) => {
    let swapped = true;
    const server = await fakeServer(t, (_req, res) => {
      if (swapped) return res.end(JSON.stringify({ swapped: true, failures: [], plugins: [status] }));
      res.statusCode = 502;
      res.end(
        JSON.stringify({
          code: 'KH_ERR_PLUGIN_FAILED',
          message: 'plugin reload failed, the previous plugins keep serving: dies: exited with code 3',
        }),
      );
    });
    const ok = await keyhold(['--server', server.url, 'plugin', 'reload'], { KEYHOLD_TOKEN: 'tok' });
    assert.equal(ok.code, 0);
    assert.match(ok.stdout, /plugins reloaded: 1 plugin\(s\)/);
    assert.deepEqual(server.requests[0], { method: 'POST', url: '/v1/plugins/reload', authorization: 'Bearer tok' });
    swapped = false;
    const refused = await keyhold(['--server', server.url, 'plugin', 'reload'], { KEYHOLD_TOKEN: 'tok' });
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /plugin reload failed, the previous plugins keep serving: dies: exited with code 3 \[KH_ERR_PLUGIN_FAILED\]/,
    );
  });
});
