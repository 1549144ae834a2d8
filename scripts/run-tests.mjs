#!/usr/bin/env node
// `npm test`: checks the formatting (Prettier, first and quick, so the runner's summary stays the
// last thing printed), runs every compiled test file under dist/test with Node's test runner, then
// fails the run if any process a test started is still alive (no test may leave a child behind).
// Only this run's processes count: they carry a random marker in their environment (see
// test/support/leftovers.ts), so a keyhold server running beside the tests does not fail them.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { leftoverProcesses, TEST_RUN_ENV } from '../dist/test/support/leftovers.js';

function testFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return testFiles(path);
    return name.endsWith('.test.js') ? [path] : [];
  });
}

// A formatting fault fails the run, but only after the tests have run and said what they found.
const format = spawnSync(process.execPath, ['node_modules/prettier/bin/prettier.cjs', '--check', '.'], { stdio: 'inherit' });
const formatted = format.status === 0;
if (!formatted) console.error('formatting: the files above are not formatted; run `npm run format` (Prettier) and commit the result');

const runId = randomUUID();
const files = testFiles('dist/test').sort();
const run = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...process.argv.slice(2), ...files], {
  stdio: 'inherit',
  env: { ...process.env, [TEST_RUN_ENV]: runId },
});

const leftovers = await leftoverProcesses(runId);
if (leftovers.length > 0) {
  console.error(`test run left ${leftovers.length} process(es) behind:\n${leftovers.map((p) => `  ${p.pid}  ${p.command}`).join('\n')}`);
  process.exit(1);
}
process.exit(run.status === 0 && !formatted ? 1 : (run.status ?? 1));
