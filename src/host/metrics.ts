// Plugin metrics in the caller's prom-client Registry (served as Prometheus text on /metrics).
// A hook call records one latency observation; its count in keyhold_plugin_calls_total is kept
// as a plain number per plugin and hook and handed to prom-client when the registry is read, so
// that a call does one label lookup, not two (docs/performance.md).
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { HookName } from 'keyhold-plugin-sdk';
import { PluginCallError, type PluginFailureKind, type ShadowOutcome } from '../lifecycle/dispatcher.js';

/** The `hook` label: a hook, or `verify` for a verify plugin's secret checks. */
export type CallName = HookName | 'verify';

/** The series of one plugin and hook, bound once so a call does no label lookups. */
export interface CallMetrics {
  /** Records a call that returned, with its duration in seconds. */
  succeeded(seconds: number): void;
  failed(kind: PluginFailureKind, seconds: number): void;
}

/** Runs one plugin call, recording it in `metrics` as a success or as a failure of its kind (a crash when the error is not a PluginCallError), with its time. */
export async function measureCall<T>(metrics: CallMetrics, call: () => Promise<T>): Promise<T> {
  const start = performance.now();
  try {
    const result = await call();
    metrics.succeeded((performance.now() - start) / 1000);
    return result;
  } catch (err) {
    metrics.failed(err instanceof PluginCallError ? err.kind : 'crash', (performance.now() - start) / 1000);
    throw err;
  }
}

/** The calls made to one plugin's hook, counted on the call path and published at scrape time. */
interface CallCount {
  labels: { plugin: string; hook: CallName };
  calls: number;
}

export class PluginMetrics {
  /** Every series forCall() handed out, in the order made. */
  private readonly counts: CallCount[] = [];
  private readonly vetoes: Counter<'plugin' | 'hook'>;
  private readonly errors: Counter<'plugin' | 'hook' | 'kind'>;
  private readonly timeouts: Counter<'plugin' | 'hook'>;
  private readonly latency: Histogram<'plugin' | 'hook'>;
  private readonly restarts: Counter<'plugin'>;
  private readonly skips: Counter<'plugin' | 'hook'>;
  private readonly shadowVetoes: Counter<'plugin' | 'hook'>;
  private readonly shadowChanges: Counter<'plugin' | 'hook'>;
  private readonly shadowFailures: Counter<'plugin' | 'hook' | 'kind'>;
  private readonly exemptions: Counter<'plugin' | 'hook'>;

  /** `states` is read at every scrape, so the up gauge always shows the plugin set currently loaded. */
  constructor(registry: Registry, states: () => Iterable<{ name: string; state: string }>) {
    const registers = [registry];
    const counts = this.counts;
    new Counter({
      name: 'keyhold_plugin_calls_total',
      help: 'Hook calls made to a plugin',
      labelNames: ['plugin', 'hook'],
      registers,
      collect() {
        this.reset();
        for (const { labels, calls } of counts) if (calls > 0) this.inc(labels, calls);
      },
    });
    this.vetoes = new Counter({
      name: 'keyhold_plugin_vetoes_total',
      help: 'Hook calls a plugin answered with a veto',
      labelNames: ['plugin', 'hook'],
      registers,
    });
    this.errors = new Counter({
      name: 'keyhold_plugin_errors_total',
      help: 'Hook calls that failed: the plugin crashed or errored (crash) or was down (unavailable)',
      labelNames: ['plugin', 'hook', 'kind'],
      registers,
    });
    this.timeouts = new Counter({
      name: 'keyhold_plugin_timeouts_total',
      help: 'Hook calls a plugin did not answer in time',
      labelNames: ['plugin', 'hook'],
      registers,
    });
    this.latency = new Histogram({
      name: 'keyhold_plugin_call_duration_seconds',
      help: 'Duration of hook calls, answered or not',
      labelNames: ['plugin', 'hook'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.restarts = new Counter({
      name: 'keyhold_plugin_restarts_total',
      help: 'Times a plugin was restarted after a crash or hang',
      labelNames: ['plugin'],
      registers,
    });
    this.skips = new Counter({
      name: 'keyhold_plugin_failopen_skips_total',
      help: 'Hook calls skipped because a failureMode: open plugin crashed, timed out or was down',
      labelNames: ['plugin', 'hook'],
      registers,
    });
    this.shadowVetoes = new Counter({
      name: 'keyhold_plugin_shadow_vetoes_total',
      help: 'Vetoes of a mode: shadow plugin, logged and not enforced',
      labelNames: ['plugin', 'hook'],
      registers,
    });
    this.shadowChanges = new Counter({
      name: 'keyhold_plugin_shadow_changes_total',
      help: 'Changes a mode: shadow plugin made to the object, logged and discarded',
      labelNames: ['plugin', 'hook'],
      registers,
    });
    this.shadowFailures = new Counter({
      name: 'keyhold_plugin_shadow_failures_total',
      help: 'Calls of a mode: shadow plugin that crashed, timed out, found it down or returned an invalid result, logged and not enforced',
      labelNames: ['plugin', 'hook', 'kind'],
      registers,
    });
    this.exemptions = new Counter({
      name: 'keyhold_plugin_exempt_skips_total',
      help: "Hook calls not made because the subject is in the plugin's exempt list (break-glass)",
      labelNames: ['plugin', 'hook'],
      registers,
    });
    new Gauge({
      name: 'keyhold_plugin_up',
      help: '1 when the plugin is ready, 0 when it is starting, restarting, failed or stopped',
      labelNames: ['plugin'],
      registers,
      collect() {
        this.reset();
        for (const { name, state } of states()) this.set({ plugin: name }, state === 'ready' ? 1 : 0);
      },
    });
  }

  forCall(plugin: string, hook: CallName): CallMetrics {
    const labels = { plugin, hook };
    // One series per plugin and hook, also when a reload builds a new dispatcher for the same pair.
    let count = this.counts.find((c) => c.labels.plugin === plugin && c.labels.hook === hook);
    if (!count) this.counts.push((count = { labels, calls: 0 }));
    const counted = count;
    const latency = this.latency.labels(labels);
    const vetoes = this.vetoes.labels(labels);
    const timeouts = this.timeouts.labels(labels);
    return {
      succeeded(seconds) {
        counted.calls++;
        latency.observe(seconds);
      },
      failed: (kind, seconds) => {
        counted.calls++;
        latency.observe(seconds);
        if (kind === 'veto') vetoes.inc();
        else if (kind === 'timeout') timeouts.inc();
        else this.errors.inc({ ...labels, kind });
      },
    };
  }

  restarted(plugin: string): void {
    this.restarts.inc({ plugin });
  }

  skipped(plugin: string, hook: HookName): void {
    this.skips.inc({ plugin, hook });
  }

  shadowed(plugin: string, hook: HookName, outcome: ShadowOutcome): void {
    if (outcome.kind === 'veto') this.shadowVetoes.inc({ plugin, hook });
    else if (outcome.kind === 'change') this.shadowChanges.inc({ plugin, hook });
    else this.shadowFailures.inc({ plugin, hook, kind: outcome.kind });
  }

  exempted(plugin: string, hook: CallName): void {
    this.exemptions.inc({ plugin, hook });
  }
}
