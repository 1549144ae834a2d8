// `keyhold plugin new NAME`: writes a TypeScript plugin project that builds and passes its test
// as generated: one overridden hook with a typed config, a harness test, and a build to one
// executable file (dist/NAME.js, shebang first, with the SDK and everything it imports bundled
// in: one file to load at each start) ready to be linked into the plugin directory. The project
// depends on keyhold-plugin-sdk by name and version, so it builds anywhere: from a registry, or
// from the SDK packed with `npm pack`.
import { readFileSync } from 'node:fs';
import { access, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A plugin's name is its file name and its key in the server's YAML. */
const NAME = /^[a-z][a-z0-9-]{0,62}$/;

/** The version of the SDK this keyhold speaks with (the SDK's entry is dist/index.js, beside its package.json one level up). */
export function sdkVersion(): string {
  const manifest = new URL('../package.json', import.meta.resolve('keyhold-plugin-sdk'));
  return (JSON.parse(readFileSync(fileURLToPath(manifest), 'utf8')) as { version: string }).version;
}

export interface ScaffoldOptions {
  /** The package.json dependency spec for keyhold-plugin-sdk (default: `^` and this keyhold's SDK version). */
  sdk?: string;
}

function className(name: string): string {
  return name.replace(/(?:^|-)([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function files(name: string, sdk: string): Record<string, string> {
  const cls = className(name);
  const packageJson = {
    name: `keyhold-plugin-${name}`,
    version: '0.1.0',
    description: `keyhold plugin ${name}`,
    private: true,
    type: 'module',
    bin: { [name]: `dist/${name}.js` },
    scripts: {
      // tsc checks the types and compiles for the tests (build/); build.mjs writes the executable, one file.
      build: 'tsc -p tsconfig.json && node build.mjs',
      test: 'npm run build && node --test build/',
    },
    dependencies: { 'keyhold-plugin-sdk': sdk },
    devDependencies: { '@types/node': '^20.19.43', esbuild: '^0.28.2', typescript: '~5.9.3' },
  };
  const tsconfig = {
    compilerOptions: {
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      lib: ['ES2023'],
      types: ['node'],
      strict: true,
      noImplicitOverride: true,
      skipLibCheck: true,
      rootDir: 'src',
      outDir: 'build',
    },
    include: ['src'],
  };
  return {
    'package.json': `${JSON.stringify(packageJson, null, 2)}\n`,
    'tsconfig.json': `${JSON.stringify(tsconfig, null, 2)}\n`,
    '.gitignore': 'node_modules/\nbuild/\ndist/\n',
    'build.mjs': `// Bundles the plugin into one executable file, dist/${name}.js: its own modules, the SDK and the
// packages it imports, so that each start loads one file instead of a tree of modules.
import { chmodSync } from 'node:fs';
import { build } from 'esbuild';

const outfile = 'dist/${name}.js';
await build({
  entryPoints: ['src/${name}.ts'],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // CommonJS packages in the bundle may require() Node's own modules: give them a require().
  banner: { js: "import { createRequire as bundleRequire } from 'node:module'; const require = bundleRequire(import.meta.url);" },
  // A package that cannot be bundled (a native addon, files it reads beside its code): name it here.
  external: [],
  logLevel: 'warning',
});
chmodSync(outfile, 0o755);
`,
    [`src/${name}.ts`]: `#!/usr/bin/env node
// ${name}: a keyhold plugin. Override the hooks you need; NullPlugin passes every other one through.
import { ConfiguredPlugin, isMainModule, serve, setting, unchanged, type Entity, type Unchanged } from 'keyhold-plugin-sdk';

/** The settings under \`plugins.plugins.${name}.config\` in the server's YAML; a value that does not fit is refused at start. */
const schema = {
  defaultShell: setting.string({ default: '/bin/sh', nonEmpty: true }),
};

export class ${cls} extends ConfiguredPlugin(schema) {
  override readonly name = '${name}';
  override readonly version = '0.1.0';

  /**
   * Gives a new entity a login shell when the request names none. Return a changed copy, or
   * \`unchanged\` (the cheapest answer); throw \`new Veto("…")\` to refuse the request.
   */
  override preEntityCreate(entity: Entity): Entity | Unchanged {
    if (entity.meta.shell !== '') return unchanged;
    this.logger.info({ entity: entity.id, shell: this.settings.defaultShell }, 'giving a new entity the default shell');
    return { ...entity, meta: { ...entity.meta, shell: this.settings.defaultShell } };
  }
}

if (isMainModule(import.meta.url)) serve(new ${cls}());
`,
    [`src/${name}.test.ts`]: `import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fakeEntity, PluginHarness } from 'keyhold-plugin-sdk/testing';
import { ${cls} } from './${name}.js';

describe('${name}', () => {
  it('gives a new entity the default shell', async () => {
    const h = await PluginHarness.start(new ${cls}());
    const { subject } = await h.call('preEntityCreate', fakeEntity({ id: 'alice' }));
    assert.equal(subject.meta.shell, '/bin/sh');
  });

  it('keeps a shell the request names, and takes the default from the config', async () => {
    const h = await PluginHarness.start(new ${cls}(), { config: { defaultShell: '/bin/zsh' } });
    assert.equal((await h.call('preEntityCreate', fakeEntity({ meta: { shell: '/bin/bash' } }))).subject.meta.shell, '/bin/bash');
    assert.equal((await h.call('preEntityCreate', fakeEntity())).subject.meta.shell, '/bin/zsh');
  });

  it('refuses a config it cannot use', async () => {
    await assert.rejects(PluginHarness.start(new ${cls}(), { config: { defaultShell: 7 } }), /config "defaultShell": expected a non-empty string, got 7/);
  });
});
`,
    'README.md': `# ${name}

A keyhold plugin. See the plugin guide (docs/plugin-guide.md in keyhold) for the hooks and the SDK.

\`\`\`sh
npm install                  # keyhold-plugin-sdk from your registry; without one, install the
                             # SDK packed from keyhold first: npm install /path/to/keyhold-plugin-sdk-<version>.tgz
npm test                     # builds dist/${name}.js and runs the tests
keyhold plugin verify dist/${name}.js
ln -s "$PWD/dist/${name}.js" /path/to/keyhold/plugins/${name}   # then: keyhold plugin reload
\`\`\`

\`npm run build\` type-checks and compiles the tests into build/, and bundles the plugin, the
SDK and the packages it imports into one executable file, dist/${name}.js (build.mjs): a start
then loads one file. Every module it evaluates at start still costs time at each start and
restart: load a heavy package on first use (\`await import()\` in the hook), not at the top.
A package that cannot be bundled (a native addon) goes in build.mjs's \`external\` list.

Settings, in the server's YAML:

\`\`\`yaml
plugins:
  plugins:
    ${name}:
      config:
        defaultShell: /bin/zsh
\`\`\`
`,
  };
}

/**
 * Writes a new plugin project called `name` into `targetDir` (created if missing; it must not
 * already hold a package.json). Returns the paths written, relative to `targetDir`.
 */
export async function scaffoldPlugin(targetDir: string, name: string, options: ScaffoldOptions = {}): Promise<string[]> {
  if (!NAME.test(name))
    throw new Error(`"${name}" cannot be a plugin name: use lower-case letters, digits and dashes, starting with a letter`);
  const exists = await access(join(targetDir, 'package.json')).then(
    () => true,
    () => false,
  );
  if (exists) throw new Error(`${targetDir} already holds a package.json; choose an empty or new directory`);
  const written = files(name, options.sdk ?? `^${sdkVersion()}`);
  for (const [path, text] of Object.entries(written)) {
    await mkdir(join(targetDir, path, '..'), { recursive: true });
    await writeFile(join(targetDir, path), text);
  }
  return Object.keys(written);
}
