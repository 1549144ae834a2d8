import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { fakeEntity } from 'keyhold-plugin-sdk/testing';
import { scaffoldPlugin } from '../../src/cli/plugin-scaffold.js';
import { startPluginChild } from '../../src/testing/plugin-child.js';

const repo = (path: string) => fileURLToPath(new URL(`../../../${path}`, import.meta.url));

/** What `npm install` would put in node_modules, as links into this checkout (no registry needed). */
async function linkDependencies(project: string): Promise<void> {
  await mkdir(join(project, 'node_modules/@types'), { recursive: true });
  await mkdir(join(project, 'node_modules/.bin'));
  await symlink(repo('sdk'), join(project, 'node_modules/keyhold-plugin-sdk'));
  await symlink(repo('node_modules/typescript'), join(project, 'node_modules/typescript'));
  await symlink(repo('node_modules/@types/node'), join(project, 'node_modules/@types/node'));
  await symlink('../typescript/bin/tsc', join(project, 'node_modules/.bin/tsc'));
}

describe('keyhold plugin new (scaffoldPlugin)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'keyhold-scaffold-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('writes a project that builds, passes its own tests and loads through the host', async () => {
    const project = join(dir, 'shell-default');
    const written = await scaffoldPlugin(project, 'shell-default', { sdk: `file:${repo('sdk')}` });
    assert.deepEqual(written.sort(), ['.gitignore', 'README.md', 'package.json', 'src/shell-default.test.ts', 'src/shell-default.ts', 'tsconfig.json']);
    await linkDependencies(project);

    // Without NODE_TEST_CONTEXT, which would make the project's own runner report to ours instead of printing.
    const { NODE_TEST_CONTEXT: _context, ...env } = process.env;
    const test = spawnSync('npm', ['test'], { cwd: project, env, encoding: 'utf8', timeout: 120_000 });
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

  it('refuses a name that cannot be a plugin file name, and a directory that holds a project', async () => {
    await assert.rejects(scaffoldPlugin(join(dir, 'x'), 'My Plugin'), /"My Plugin" cannot be a plugin name/);
    const taken = join(dir, 'taken');
    await scaffoldPlugin(taken, 'taken');
    await assert.rejects(scaffoldPlugin(taken, 'taken'), /already holds a package.json/);
  });
});
