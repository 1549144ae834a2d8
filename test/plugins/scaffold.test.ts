import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fakeEntity } from 'keyhold-plugin-sdk/testing';
import { scaffoldPlugin } from '../../src/cli/plugin-scaffold.js';
import { startPluginChild } from '../../src/testing/plugin-child.js';
import { npm, scaffoldLinked } from '../support/plugin-projects.js';

describe('keyhold plugin new (scaffoldPlugin)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'keyhold-scaffold-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('writes a project that builds, passes its own tests and loads through the host', async () => {
    const project = await scaffoldLinked(dir, 'shell-default');
    assert.deepEqual((await readdir(join(project, 'src'))).sort(), ['shell-default.test.ts', 'shell-default.ts']);
    assert.deepEqual((await readdir(project)).sort(), ['.gitignore', 'README.md', 'node_modules', 'package.json', 'src', 'tsconfig.json']);

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

  it('refuses a name that cannot be a plugin file name, and a directory that holds a project', async () => {
    await assert.rejects(scaffoldPlugin(join(dir, 'x'), 'My Plugin'), /"My Plugin" cannot be a plugin name/);
    const taken = join(dir, 'taken');
    await scaffoldPlugin(taken, 'taken');
    await assert.rejects(scaffoldPlugin(taken, 'taken'), /already holds a package.json/);
  });
});
