// Suite 3: spawn-to-ready of 1 and 10 plugins (PluginHost.start: discovery, spawn, handshake
// answered) beside bare Node children started the same way, for a plugin as `keyhold plugin new`
// writes and builds it; and from a plugin crash to the first good call.
import type { HookContext } from 'keyhold-plugin-sdk';
import { runHook } from '../../src/lifecycle/chain.js';
import type { PluginHost } from '../../src/host/host.js';
import { startBareNode } from '../lib/bare-node.js';
import { count, type BenchOptions } from '../lib/options.js';
import { realisticEntity } from '../lib/payload.js';
import { benchHost, copiesSet, pluginSet } from '../lib/plugins.js';
import type { Report } from '../lib/report.js';
import { scaffoldedPlugin } from '../lib/scaffolded.js';
import { median, microsSince } from '../lib/stats.js';

const SUITE = 'start & recovery';

function context(): HookContext {
  return { requestId: 'bench', operation: 'entity.update-meta', caller: 'root', deadline: Date.now() + 60_000, state: {} };
}

/** Milliseconds for `n` bare Node children started at once to all be ready. */
async function bareStart(n: number): Promise<number> {
  const start = process.hrtime.bigint();
  const children = await Promise.all(Array.from({ length: n }, () => startBareNode()));
  const ms = microsSince(start) / 1000;
  await Promise.all(children.map((c) => c.close()));
  return ms;
}

/** Milliseconds for a host over `n` copies of the plugin `file` to start them all. */
async function pluginStart(file: string, n: number): Promise<number> {
  const set = copiesSet(file, n);
  const host = benchHost(set);
  try {
    const start = process.hrtime.bigint();
    await host.start();
    return microsSince(start) / 1000;
  } finally {
    await host.stop();
    set.remove();
  }
}

/** Resolves when a plugin of `host` is next ready. The timer also keeps this process alive meanwhile: the restart timer does not. */
function nextReady(host: PluginHost, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`no plugin became ready within ${timeoutMs} ms`));
    }, timeoutMs);
    const unsubscribe = host.onStateChange((status) => {
      if (status.state !== 'ready') return;
      clearTimeout(timer);
      unsubscribe();
      resolve();
    });
  });
}

/** Milliseconds from SIGKILL of a running plugin to the first successful hook call after its restart (a fresh host each time: restarts back off). */
async function crashToGoodCall(): Promise<number> {
  const set = pluginSet([['preEntityUpdate']]);
  const host = benchHost(set);
  try {
    await host.start();
    const entity = realisticEntity();
    await runHook(host.dispatcher, 'preEntityUpdate', entity, {}, context());
    const pid = host.status()[0]!.pid!;
    const restarted = nextReady(host);
    const start = process.hrtime.bigint();
    process.kill(pid, 'SIGKILL');
    await restarted;
    await runHook(host.dispatcher, 'preEntityUpdate', entity, {}, context());
    return microsSince(start) / 1000;
  } finally {
    await host.stop();
    set.remove();
  }
}

export async function startAndRecovery(report: Report, options: BenchOptions): Promise<void> {
  const runs = Math.max(options.runs, count(options, 10));
  const figures = {
    bare1: [] as number[],
    plugin1: [] as number[],
    bare10: [] as number[],
    plugin10: [] as number[],
    crash: [] as number[],
  };
  const scaffolded = await scaffoldedPlugin();
  try {
    for (let run = 0; run < runs; run++) {
      figures.bare1.push(await bareStart(1));
      figures.plugin1.push(await pluginStart(scaffolded.file, 1));
      figures.bare10.push(await bareStart(10));
      figures.plugin10.push(await pluginStart(scaffolded.file, 10));
      figures.crash.push(await crashToGoodCall());
    }
  } finally {
    scaffolded.remove();
  }
  report.add(SUITE, 'bare node start', median(figures.bare1), 'ms');
  report.compare(SUITE, '1 scaffolded plugin spawn-to-ready', median(figures.plugin1), 'ms', 'bare node start', '≤ 1.3×');
  report.add(SUITE, '10 bare nodes started at once', median(figures.bare10), 'ms');
  report.compare(SUITE, '10 scaffolded plugins spawn-to-ready', median(figures.plugin10), 'ms', '10 bare nodes started at once', '≤ 1.3×');
  report.add(SUITE, 'crash to first good call (restart delay 100 ms)', median(figures.crash), 'ms', '≤ 250 ms');
}
