// The htpasswd-check example (Python, standard library, openssl passwd) as the verify plugin of a
// real server: the file's secret logs an entity in (replace mode), its keyhold secret and a wrong
// one do not, an entity without a line is refused, and the bootstrap root keeps its own secret.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import YAML from 'yaml';
import { startServer } from '../../src/server.js';
import { call, killChildren, login, scratchDir, serverEnv } from '../support/keyhold.js';
import { repoPath } from '../support/plugin-projects.js';

after(killChildren);

const hashOf = (scheme: string, secret: string) =>
  execFileSync('openssl', ['passwd', scheme, '-stdin'], { input: `${secret}\n`, encoding: 'utf8' }).trim();

describe('examples/htpasswd-check', () => {
  it('lets the htpasswd file decide the logins of the entities it claims', async (t) => {
    const dir = scratchDir('htpasswd');
    const file = join(dir, 'users.htpasswd');
    writeFileSync(file, `alice:${hashOf('-apr1', 'file-pass-A')}\ncarol:${hashOf('-6', 'file-pass-C')}\n`);
    const plugins = mkdtempSync(join(tmpdir(), 'keyhold-plugins-'));
    t.after(() => rmSync(plugins, { recursive: true, force: true }));
    symlinkSync(repoPath('examples/htpasswd-check/htpasswd-check'), join(plugins, 'htpasswd-check'));
    const configFile = join(dir, 'keyhold.yaml');
    writeFileSync(configFile, YAML.stringify({ plugins: { pingInterval: 0, plugins: { 'htpasswd-check': { config: { file } } } } }));
    const handle = await startServer({
      env: serverEnv(join(dir, 'data'), {
        KEYHOLD_PLUGIN_DIR: plugins,
        KEYHOLD_CONFIG: configFile,
        KEYHOLD_BOOTSTRAP: 'root:root-secret-H1',
      }),
      logger: pino({ level: 'silent' }),
    });
    t.after(() => handle.close());
    const token = await login(handle.url, 'root', 'root-secret-H1');
    for (const id of ['alice', 'bob', 'carol'])
      assert.equal((await call(handle.url, 'POST', '/v1/entities', { token, body: { id, secret: `keyhold-pass-${id}` } })).status, 201);
    const status = async (id: string, secret: string) =>
      (await call(handle.url, 'POST', '/v1/auth/token', { body: { id, secret } })).status;
    assert.equal(await status('alice', 'file-pass-A'), 200, 'an $apr1$ line');
    assert.equal(await status('carol', 'file-pass-C'), 200, 'a $6$ line');
    assert.equal(await status('alice', 'keyhold-pass-alice'), 401, 'the keyhold secret does not decide');
    assert.equal(await status('alice', 'file-pass-C'), 401, 'a wrong secret');
    assert.equal(await status('bob', 'keyhold-pass-bob'), 401, 'no line in the file');
  });
});
