// Plugin projects and files for tests: paths in this checkout, and a scaffolded project whose
// dependencies are links into the checkout (what `npm install` would give, without a registry).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { scaffoldPlugin } from '../../src/cli/plugin-scaffold.js';

/** A path in the repository (this file runs from dist/test/support/). */
export function repoPath(path: string): string {
  return fileURLToPath(new URL(`../../../${path}`, import.meta.url));
}

/** Scaffolds plugin `name` into `dir`/`name` with its dependencies linked; returns the project directory. */
export async function scaffoldLinked(dir: string, name: string): Promise<string> {
  const project = join(dir, name);
  await scaffoldPlugin(project, name);
  await mkdir(join(project, 'node_modules/@types'), { recursive: true });
  await mkdir(join(project, 'node_modules/.bin'));
  await symlink(repoPath('sdk'), join(project, 'node_modules/keyhold-plugin-sdk'));
  for (const pkg of ['typescript', 'esbuild', '@types/node'])
    await symlink(repoPath(`node_modules/${pkg}`), join(project, `node_modules/${pkg}`));
  await symlink('../typescript/bin/tsc', join(project, 'node_modules/.bin/tsc'));
  await symlink('../esbuild/bin/esbuild', join(project, 'node_modules/.bin/esbuild'));
  return project;
}

/** Runs `npm <args>` in `project`, outside our test runner's context (NODE_TEST_CONTEXT would make a nested runner report to ours instead of printing). */
export function npm(project: string, ...args: string[]): SpawnSyncReturns<string> {
  const { NODE_TEST_CONTEXT: _context, ...env } = process.env;
  return spawnSync('npm', args, { cwd: project, env, encoding: 'utf8', timeout: 120_000 });
}
