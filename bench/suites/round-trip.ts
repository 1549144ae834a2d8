// Suite 1: one hook call host → plugin → host with the realistic entity, through the real
// PluginHost and SDK, beside the same hook called in-process and the raw pipe floor.
import type { HookContext, HookParams } from 'keyhold-plugin-sdk';
import { runHook } from '../../src/lifecycle/chain.js';
import type { HookDispatcher, HookHandler } from '../../src/lifecycle/dispatcher.js';
import { measureLatency, measureThroughput, type LatencyFigures } from '../lib/measure.js';
import { count, type BenchOptions } from '../lib/options.js';
import { realisticEntity } from '../lib/payload.js';
import { benchHost, pluginSet } from '../lib/plugins.js';
import type { Report } from '../lib/report.js';
import { median } from '../lib/stats.js';
import { startRawPeer } from '../raw-pipe.js';

const SUITE = 'round trip';
const IN_FLIGHT = 8;

function context(): HookContext {
  return { requestId: 'bench', operation: 'entity.update-meta', caller: 'root', deadline: Date.now() + 3_600_000, state: {} };
}

/** What the engine would do: runHook over `dispatcher`, so validation of the result is counted. */
function hookCall(dispatcher: HookDispatcher): () => Promise<unknown> {
  const entity = realisticEntity();
  const request = { patch: { displayName: 'Alice Example' } };
  return () => runHook(dispatcher, 'preEntityUpdate', entity, request, context());
}

const inProcessHandler: HookHandler = {
  plugin: 'in-process',
  failureMode: 'closed',
  call: async ({ subject, context: { state } }: HookParams) => ({ subject, state }),
};
const IN_PROCESS: HookDispatcher = { handlersFor: (hook) => (hook === 'preEntityUpdate' ? [inProcessHandler] : []) };

interface Contender {
  name: string;
  call: () => Promise<unknown>;
}

export async function roundTrip(report: Report, options: BenchOptions): Promise<void> {
  const set = pluginSet([['preEntityUpdate']]);
  const host = benchHost(set);
  const raw = startRawPeer();
  try {
    const dispatcher = await host.start();
    // The raw peer echoes the same object the host sends: HookParams with the realistic entity.
    const params: HookParams = { hook: 'preEntityUpdate', subject: realisticEntity(), request: { patch: { displayName: 'Alice Example' } }, context: context() };
    const contenders: Contender[] = [
      { name: 'raw pipe', call: () => raw.call(params) },
      { name: 'in-process', call: hookCall(IN_PROCESS) },
      { name: 'plugin', call: hookCall(dispatcher) },
    ];
    const latency = new Map<string, LatencyFigures[]>(contenders.map((c) => [c.name, []]));
    const throughput = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
    // Runs interleave the contenders, so that a busy moment of the machine hits them alike.
    for (let run = 0; run < options.runs; run++) {
      for (const c of contenders) {
        latency.get(c.name)!.push(await measureLatency(c.call, count(options, 20_000)));
        throughput.get(c.name)!.push(await measureThroughput(c.call, count(options, 50_000), IN_FLIGHT));
      }
    }
    const med = (name: string, key: keyof LatencyFigures) => median(latency.get(name)!.map((f) => f[key]));
    for (const key of ['p50', 'p99', 'mean'] as const) {
      report.add(SUITE, `raw pipe ${key}`, med('raw pipe', key), 'µs');
      report.add(SUITE, `in-process ${key}`, med('in-process', key), 'µs');
      report.compare(SUITE, `plugin ${key}`, med('plugin', key), 'µs', `raw pipe ${key}`, key === 'p50' ? '≤ 1.3×' : key === 'p99' ? '≤ 3×' : undefined);
    }
    report.add(SUITE, `raw pipe calls/s (${IN_FLIGHT} in flight)`, median(throughput.get('raw pipe')!), 'calls/s');
    report.add(SUITE, `in-process calls/s (${IN_FLIGHT} in flight)`, median(throughput.get('in-process')!), 'calls/s');
    report.compare(SUITE, `plugin calls/s (${IN_FLIGHT} in flight)`, median(throughput.get('plugin')!), 'calls/s', `raw pipe calls/s (${IN_FLIGHT} in flight)`, '≥ 0.7×');
  } finally {
    await Promise.allSettled([host.stop(), raw.close()]);
    set.remove();
  }
}
