#!/usr/bin/env node
// Bundles vscode-jsonrpc (its Node entry) into one CommonJS file, dist/vendor/vscode-jsonrpc.cjs,
// which sdk/src/jsonrpc.ts loads. Loaded from its own ~20 files it cost every plugin process
// about 5 MiB of memory and 10 ms of start-up more than as one file (docs/performance.md).
// Run by the SDK's build; the output is not committed.
import { build } from 'esbuild';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
await build({
  entryPoints: [require.resolve('vscode-jsonrpc/node')],
  outfile: fileURLToPath(new URL('../dist/vendor/vscode-jsonrpc.cjs', import.meta.url)),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  legalComments: 'inline',
  logLevel: 'warning',
});
