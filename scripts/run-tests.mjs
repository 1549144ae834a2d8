#!/usr/bin/env node
// `npm test`: runs every compiled test file under dist/test with Node's test runner, then
// fails the run if any process a test started is still alive (no test may leave a child behind).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

function testFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return testFiles(path);
    return name.endsWith('.test.js') ? [path] : [];
  });
}

const files = testFiles('dist/test').sort();
const run = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...process.argv.slice(2), ...files], { stdio: 'inherit' });

// Any process still carrying the plugin cookie in its environment was started by a test and left behind.
const leftovers = [];
for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
  try {
    if (readFileSync(`/proc/${pid}/environ`, 'latin1').includes('KEYHOLD_PLUGIN_MAGIC_COOKIE=')) leftovers.push(pid);
  } catch {
    // The process ended while we looked, or is not ours to read.
  }
}
if (leftovers.length > 0) {
  console.error(`test run left ${leftovers.length} plugin process(es) behind: pids ${leftovers.join(', ')}`);
  process.exit(1);
}
process.exit(run.status ?? 1);
