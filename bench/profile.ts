// `node dist/bench/profile.js [--answer unchanged|same-object|changed] [DIR]`: profiles the plugin
// hook round trip (--cpu-prof) on both sides and prints each side's functions by self time. It
// runs itself again under --cpu-prof as the host, which starts the pass-through plugin (answering
// as --answer says, default unchanged) through a wrapper that profiles it too; the .cpuprofile
// files stay in DIR (default: a new temporary directory) for Chrome DevTools.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HookContext } from 'keyhold-plugin-sdk';
import { runHook } from '../src/lifecycle/chain.js';
import { measureThroughput } from './lib/measure.js';
import { realisticEntity } from './lib/payload.js';
import { benchFixture, benchHost, pluginSet } from './lib/plugins.js';

const CALLS = 100_000;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/** Self time per function (name, file:line) as a share of all samples, the top `limit`. */
function topSelf(file: string, limit = 30): string {
  const { nodes, samples } = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[] };
  const byId = new Map(nodes.map((n) => [n.id, n.callFrame]));
  const self = new Map<string, number>();
  for (const id of samples) {
    const { functionName, url, lineNumber } = byId.get(id)!;
    const where = url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, '');
    const key = `${functionName || '(anonymous)'}  ${where}${where ? `:${lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + 1);
  }
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([key, n]) => `${((100 * n) / samples.length).toFixed(1).padStart(5)}%  ${key}`)
    .join('\n');
}

/** The profiled host: sequential warm-up, then CALLS calls with 8 in flight. */
async function measureProfiled(dir: string, answer: string): Promise<void> {
  const wrapper = join(dir, 'profiled-plugin.sh');
  writeFileSync(
    wrapper,
    `#!/bin/sh\nexec "${process.execPath}" --cpu-prof --cpu-prof-dir="${dir}" --cpu-prof-name=plugin.cpuprofile "${benchFixture('pass-through-plugin')}"\n`,
    { mode: 0o755 },
  );
  const set = pluginSet([], { 'pass-through.sh': { file: wrapper, config: { answer } } });
  const host = benchHost(set);
  try {
    const dispatcher = await host.start();
    const entity = realisticEntity();
    const context = (): HookContext => ({
      requestId: 'bench',
      operation: 'entity.update-meta',
      caller: 'root',
      deadline: Date.now() + 60_000,
      state: {},
    });
    const call = () => runHook(dispatcher, 'preEntityUpdate', entity, { patch: { displayName: 'Alice Example' } }, context());
    for (let i = 0; i < 5_000; i++) await call();
    console.error(`${Math.round(await measureThroughput(call, CALLS, 8))} calls/s with 8 in flight (while profiled)`);
  } finally {
    await host.stop();
    set.remove();
  }
}

if (process.argv[2] === '--profiled') {
  await measureProfiled(process.argv[3]!, process.argv[4]!);
} else {
  const args = process.argv.slice(2);
  const at = args.indexOf('--answer');
  const answer = at < 0 ? 'unchanged' : args.splice(at, 2)[1]!;
  const dir = args[0] ?? mkdtempSync(join(tmpdir(), 'keyhold-profile-'));
  mkdirSync(dir, { recursive: true });
  const self = fileURLToPath(import.meta.url);
  const run = spawnSync(
    process.execPath,
    ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-name=host.cpuprofile', self, '--profiled', dir, answer],
    { stdio: 'inherit' },
  );
  if (run.status !== 0) process.exit(run.status ?? 1);
  for (const side of ['host', 'plugin'])
    console.log(`\n${side} side, self time (${join(dir, `${side}.cpuprofile`)}):\n${topSelf(join(dir, `${side}.cpuprofile`))}`);
}
