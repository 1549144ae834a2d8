import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fakeEntity } from 'keyhold-plugin-sdk/testing';
import { scaffoldPlugin, sdkVersion } from '../../src/cli/plugin-scaffold.js';
import { startPluginChild } from '../../src/testing/plugin-child.js';
import { call, login, runCli, startTestServer } from '../support/keyhold.js';
import { npm, repoPath, scaffoldLinked } from '../support/plugin-projects.js';

describe('keyhold plugin new (scaffoldPlugin)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'keyhold-scaffold-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('writes a project that builds, passes its own tests and loads through the host', async () => {
    const project = await scaffoldLinked(dir, 'shell-default');
    assert.deepEqual((await readdir(join(project, 'src'))).sort(), ['shell-default.test.ts', 'shell-default.ts']);
    assert.deepEqual((await readdir(project)).sort(), [
      '.gitignore',
      'README.md',
      'build.mjs',
      'node_modules',
      'package.json',
      'src',
      'tsconfig.json',
    ]);

    const test = npm(project, 'test');
    assert.equal(test.status, 0, `npm test failed:\n${test.stdout}\n${test.stderr}`);
    assert.match(test.stdout, /# pass 3/);

    const child = await startPluginChild(join(project, 'dist/shell-default.js'), { config: { defaultShell: '/bin/zsh' } });
    try {
      assert.deepEqual(child.status.hooks, ['preEntityCreate']);
      assert.equal((await child.call('preEntityCreate', fakeEntity({ id: 'carol' }))).subject.meta.shell, '/bin/zsh');
    } finally {
      await child.stop();
    }
  });

  it('depends on the SDK by name and version: installed from the packed SDK outside the checkout, it builds, passes its tests and loads into a server', async () => {
    const project = join(dir, 'packed', 'shell-default');
    await scaffoldPlugin(project, 'shell-default');
    const manifest = JSON.parse(await readFile(join(project, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    assert.deepEqual(manifest.dependencies, { 'keyhold-plugin-sdk': `^${sdkVersion()}` });

    // The SDK as its tarball (the checkout is built: no need to run its prepack build here).
    await mkdir(join(dir, 'packed', 'sdk'));
    const pack = npm(repoPath('sdk'), 'pack', '--ignore-scripts', '--json', '--pack-destination', join(dir, 'packed', 'sdk'));
    assert.equal(pack.status, 0, pack.stderr);
    const tarball = join(dir, 'packed', 'sdk', (JSON.parse(pack.stdout) as { filename: string }[])[0]!.filename);
    // The SDK from the tarball alone; its own dependencies and the project's tools from the npm cache (or registry) as usual.
    const install = npm(project, 'install', tarball, '--prefer-offline', '--no-audit', '--no-fund');
    assert.equal(install.status, 0, `npm install failed:\n${install.stdout}\n${install.stderr}`);
    const test = npm(project, 'test');
    assert.equal(test.status, 0, `npm test failed:\n${test.stdout}\n${test.stderr}`);
    assert.match(test.stdout, /# pass 3/);

    const plugins = join(dir, 'packed', 'plugins');
    await mkdir(plugins);
    await symlink(join(project, 'dist/shell-default.js'), join(plugins, 'shell-default'));
    const server = await startTestServer('packed-root-secret', { KEYHOLD_PLUGIN_DIR: plugins });
    try {
      const token = await login(server.url, 'root', 'packed-root-secret');
      const created = await call(server.url, 'POST', '/v1/entities', { token, body: { id: 'erin' } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal((created.body as { meta: { shell: string } }).meta.shell, '/bin/sh');
    } finally {
      await server.close();
    }
  });

  it('keyhold plugin new writes the SDK dependency as ^version, or as --sdk says', async () => {
    const dependency = async (project: string) =>
      (JSON.parse(await readFile(join(project, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies;
    const plain = await runCli(['plugin', 'new', 'plain', '--dir', join(dir, 'cli', 'plain')], {});
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /npm pack \.\/sdk/);
    assert.deepEqual(await dependency(join(dir, 'cli', 'plain')), { 'keyhold-plugin-sdk': `^${sdkVersion()}` });
    const packed = await runCli(
      ['plugin', 'new', 'packed', '--dir', join(dir, 'cli', 'packed'), '--sdk', 'file:../keyhold-plugin-sdk-0.1.0.tgz'],
      {},
    );
    assert.equal(packed.code, 0, packed.stderr);
    assert.deepEqual(await dependency(join(dir, 'cli', 'packed')), { 'keyhold-plugin-sdk': 'file:../keyhold-plugin-sdk-0.1.0.tgz' });
  });

  it('refuses a name that cannot be a plugin file name, and a directory that holds a project', async () => {
    await assert.rejects(scaffoldPlugin(join(dir, 'x'), 'My Plugin'), /"My Plugin" cannot be a plugin name/);
    const taken = join(dir, 'taken');
    await scaffoldPlugin(taken, 'taken');
    await assert.rejects(scaffoldPlugin(taken, 'taken'), /already holds a package.json/);
  });
});
