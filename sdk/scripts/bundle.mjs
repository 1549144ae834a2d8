#!/usr/bin/env node
// Bundles the SDK into one ES module, dist/index.js, and its test harness into another,
// dist/testing/index.js, which imports the first (so both share one log route and one set of
// classes). A plugin process then loads one file for the SDK instead of a graph of modules, a
// large part of its start-up time (docs/performance.md). tsc writes the type declarations beside
// them; pino and protobufjs stay packages, loaded on first use. Run by the SDK's build.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const sdk = (path) => fileURLToPath(new URL(`../${path}`, import.meta.url));
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  packages: 'external',
  sourcemap: true,
  logLevel: 'warning',
};

await build({ ...common, entryPoints: [sdk('src/index.ts')], outfile: sdk('dist/index.js') });
// The harness imports the SDK through '../index.js': left as an import of the bundle above.
await build({ ...common, entryPoints: [sdk('src/testing/index.ts')], outfile: sdk('dist/testing/index.js'), external: ['../index.js'] });
