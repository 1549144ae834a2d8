// Suite 1: one hook call host → plugin → host with the realistic entity, through the real
// PluginHost and SDK, beside references that do the same work: a raw pipe child getting the same
// request bytes and giving the same answer (Node's floor), the same answer from an HTTP webhook,
// and the hook called in-process. Two cases: a hook that leaves the object unchanged (the plugin
// answers {state}) and one that edits it (the whole object comes back and is checked).
import type { HookContext, HookParams } from 'keyhold-plugin-sdk';
import type { PluginHost } from '../../src/host/host.js';
import { runHook } from '../../src/lifecycle/chain.js';
import type { HookDispatcher, HookHandler } from '../../src/lifecycle/dispatcher.js';
import { measureLatency, measureThroughput, type LatencyFigures } from '../lib/measure.js';
import { count, type BenchOptions } from '../lib/options.js';
import { realisticEntity } from '../lib/payload.js';
import { startRawPeer, startWebhookPeer, type Peer } from '../lib/peers.js';
import { benchHost, pluginSet, type PluginSet } from '../lib/plugins.js';
import type { Report } from '../lib/report.js';
import { median } from '../lib/stats.js';

const SUITE = 'round trip';
const IN_FLIGHT = 8;
const REQUEST = { patch: { displayName: 'Alice Example' } };

function context(): HookContext {
  return { requestId: 'bench', operation: 'entity.update-meta', caller: 'root', deadline: Date.now() + 3_600_000, state: {} };
}

/** What the engine would do: runHook over `dispatcher`, so the check of a changed result is counted. */
function hookCall(dispatcher: HookDispatcher): () => Promise<unknown> {
  const entity = realisticEntity();
  return () => runHook(dispatcher, 'preEntityUpdate', entity, REQUEST, context());
}

/** What a reference is sent: the params the host sends the plugin (runHook sends a copy of the context). */
function peerCall(peer: Peer): () => Promise<unknown> {
  const entity = realisticEntity();
  return () => peer.call({ hook: 'preEntityUpdate', subject: entity, request: REQUEST, context: context() } satisfies HookParams);
}

const inProcessHandler: HookHandler = {
  plugin: 'in-process',
  failureMode: 'closed',
  call: async ({ context: { state } }: HookParams) => ({ state }),
};
const IN_PROCESS: HookDispatcher = { handlersFor: (hook) => (hook === 'preEntityUpdate' ? [inProcessHandler] : []) };

interface Contender {
  name: string;
  call: () => Promise<unknown>;
  /** Share of the full counts this one runs (the webhook is slow enough to need fewer calls for the same precision). */
  share: number;
}

/** The figure names of one contender, as printed. */
const figure = (name: string, key: keyof LatencyFigures | 'calls/s') =>
  key === 'calls/s' ? `${name} calls/s (${IN_FLIGHT} in flight)` : `${name} ${key}`;

export async function roundTrip(report: Report, options: BenchOptions): Promise<void> {
  const answers = ['unchanged', 'same-object', 'changed'] as const;
  const sets: PluginSet[] = answers.map((answer) => pluginSet([['preEntityUpdate']], {}, answer));
  const hosts: PluginHost[] = sets.map(benchHost);
  const peers: Peer[] = [];
  try {
    const [unchanged, sameObject, changed] = await Promise.all(hosts.map((h) => h.start()));
    const peer = async (started: Peer | Promise<Peer>) => {
      const p = await started;
      peers.push(p);
      return peerCall(p);
    };
    const contenders: Contender[] = [
      { name: 'pipe, same work', call: await peer(startRawPeer('state')), share: 1 },
      { name: 'plugin', call: hookCall(unchanged!), share: 1 },
      { name: 'pipe, same work, changed', call: await peer(startRawPeer('changed')), share: 1 },
      { name: 'plugin, changed', call: hookCall(changed!), share: 1 },
      { name: 'plugin, same object', call: hookCall(sameObject!), share: 1 },
      { name: 'echo pipe', call: await peer(startRawPeer('echo')), share: 1 },
      { name: 'in-process', call: hookCall(IN_PROCESS), share: 1 },
      { name: 'webhook', call: await peer(startWebhookPeer('state')), share: 0.25 },
      { name: 'webhook, changed', call: await peer(startWebhookPeer('changed')), share: 0.25 },
    ];
    const latency = new Map<string, LatencyFigures[]>(contenders.map((c) => [c.name, []]));
    const throughput = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
    for (const c of contenders) await measureThroughput(c.call, count(options, 5_000 * c.share), IN_FLIGHT); // warm-up
    // Runs interleave the contenders, so that a busy moment of the machine hits them alike; many
    // short runs rather than a few long ones, so that a busy stretch of the shared machine lands in
    // few of any one contender's runs (the figure is the median of its runs).
    const runs = 3 * options.runs;
    for (let run = 0; run < runs; run++) {
      for (const c of contenders) {
        latency.get(c.name)!.push(await measureLatency(c.call, count(options, (60_000 / runs) * c.share), 200));
        throughput.get(c.name)!.push(await measureThroughput(c.call, count(options, (150_000 / runs) * c.share), IN_FLIGHT));
      }
    }
    const med = (name: string, key: keyof LatencyFigures) => median(latency.get(name)!.map((f) => f[key]));
    const perSecond = (name: string) => median(throughput.get(name)!);
    const add = (name: string) => {
      for (const key of ['p50', 'p99', 'mean'] as const) report.add(SUITE, figure(name, key), med(name, key), 'µs');
      report.add(SUITE, figure(name, 'calls/s'), perSecond(name), 'calls/s');
    };
    /** `name` against `reference`, figure by figure, with the targets given. */
    const compare = (name: string, reference: string, targets: Partial<Record<keyof LatencyFigures | 'calls/s', string>> = {}) => {
      for (const key of ['p50', 'p99', 'mean'] as const)
        report.compare(SUITE, figure(name, key), med(name, key), 'µs', figure(reference, key), targets[key]);
      report.compare(SUITE, figure(name, 'calls/s'), perSecond(name), 'calls/s', figure(reference, 'calls/s'), targets['calls/s']);
    };
    add('pipe, same work');
    compare('plugin', 'pipe, same work', { p50: '≤ 1.2×', p99: '≤ 3×', 'calls/s': '≥ 0.7×' });
    add('pipe, same work, changed');
    compare('plugin, changed', 'pipe, same work, changed', { p50: '≤ 1.2×', p99: '≤ 3×', 'calls/s': '≥ 0.6×' });
    compare('plugin, same object', 'pipe, same work');
    add('echo pipe');
    report.compare(SUITE, 'plugin calls/s, against the echo pipe', perSecond('plugin'), 'calls/s', figure('echo pipe', 'calls/s'));
    add('in-process');
    compare('webhook', 'plugin');
    compare('webhook, changed', 'plugin, changed');
  } finally {
    await Promise.allSettled([...hosts.map((h) => h.stop()), ...peers.map((p) => p.close())]);
    for (const set of sets) set.remove();
  }
}
