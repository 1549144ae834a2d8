// A plugin as `keyhold plugin new` writes it, built as its README says (`npm run build`: the
// executable is one bundled file importing the SDK), for the start suite: the goal is measured
// on what a plugin author gets. Its dependencies are links into this checkout.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { npm, scaffoldLinked } from '../../test/support/plugin-projects.js';

export interface ScaffoldedPlugin {
  /** The built executable, dist/<name>.js. */
  file: string;
  remove(): void;
}

export async function scaffoldedPlugin(name = 'bench-start'): Promise<ScaffoldedPlugin> {
  const dir = mkdtempSync(join(tmpdir(), 'keyhold-bench-scaffold-'));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  try {
    const project = await scaffoldLinked(dir, name);
    const build = npm(project, 'run', 'build');
    if (build.status !== 0) throw new Error(`building the scaffolded plugin failed:\n${build.stdout}\n${build.stderr}`);
    return { file: join(project, 'dist', `${name}.js`), remove };
  } catch (err) {
    remove();
    throw err;
  }
}
