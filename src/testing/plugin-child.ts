// Starts one plugin as a real child process through the real host code (discovery, spawn with
// the cookie, handshake, supervisor, dispatcher, chain checks), so a plugin's tests can see
// exactly what the server would do with it. The SDK's in-process harness is the quick test;
// this one catches what only the wire shows: the shebang and exec bit, config over the
// handshake, the reported hook list, results the host refuses, logs reaching the host.
//
// Plugin authors import it from the server package: `import { startPluginChild } from
// 'keyhold/dist/src/testing/plugin-child.js'`.
import { Writable } from 'node:stream';
import {
  committedHookName,
  hookSpec,
  operationsAt,
  MemoryStateBackend,
  type CommittedEvent,
  type HookContext,
  type HookName,
  type JsonObject,
} from 'keyhold-plugin-sdk';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { discoverPlugins } from '../host/discover.js';
import { buildDispatcher } from '../host/dispatch.js';
import { PluginMetrics } from '../host/metrics.js';
import { PluginStateHost } from '../host/plugin-state.js';
import { parsePluginSettings } from '../host/settings.js';
import { PluginSupervisor, type PluginStatus } from '../host/supervisor.js';
import { runHook, type Subject } from '../lifecycle/chain.js';
import type { HookDispatcher } from '../lifecycle/dispatcher.js';
import type { PluginStateStore } from '../store/plugin-state.js';
import { VERSION } from '../version.js';

/** A host log record: pino's JSON with the level as its name. */
export interface HostLogRecord {
  level: string;
  msg: string;
  plugin?: string;
  [field: string]: unknown;
}

export interface PluginChildOptions {
  /** The plugin's `config:`, as under `plugins.plugins.<name>.config` in the server's YAML. */
  config?: JsonObject;
  /** Other settings of that entry (`timeout`, `failureMode`, `sha256`, …) as written in the YAML. */
  entry?: JsonObject;
  /** Where the plugin's state is kept (a server's store.pluginState); default: in memory, for this child only. */
  pluginState?: PluginStateStore;
}

/** Plugin state in memory, one namespace per plugin: what a child gets when the test gives no store. */
export function memoryPluginState(): PluginStateStore {
  const namespaces = new Map<string, MemoryStateBackend>();
  const of = (plugin: string) => namespaces.get(plugin) ?? namespaces.set(plugin, new MemoryStateBackend()).get(plugin)!;
  return {
    get: (plugin, key, now) => of(plugin).get(key, now),
    list: (plugin, prefix, after, limit, now) => of(plugin).list(prefix, after, limit, now),
    change: (plugin, key, now, decide) => of(plugin).change(key, now, decide),
    prune: async () => 0,
  };
}

export interface PluginChild {
  readonly status: PluginStatus;
  /** Everything the host logged about the plugin, the plugin's own records and stderr lines included. */
  readonly logs: HostLogRecord[];
  /**
   * Calls one hook as the server's chain does. Resolves with the checked object; rejects with the
   * server's KeyholdError (KH_ERR_PLUGIN_VETO, KH_ERR_PLUGIN_FAILED, …) naming plugin and hook.
   */
  call<S extends Subject>(
    hook: HookName,
    subject: S,
    request?: JsonObject,
    context?: Partial<HookContext>,
  ): Promise<{ subject: S; state: JsonObject }>;
  /**
   * Delivers one committed event to the hook of its point, as the server's outbox does. Resolves
   * when the plugin took it; rejects with the host's PluginCallError (the server would retry).
   */
  deliver(event: CommittedEvent, attempt?: number): Promise<void>;
  /** Shutdown request, grace, SIGTERM, SIGKILL: the host's own stop sequence. */
  stop(): Promise<void>;
}

/**
 * Starts the plugin file at `path`. Rejects with the host's exact reason when it cannot be
 * loaded (not executable, refused config, no handshake, …), after the process is gone.
 */
export async function startPluginChild(path: string, options: PluginChildOptions = {}): Promise<PluginChild> {
  const logs: HostLogRecord[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(JSON.parse(chunk.toString('utf8')) as HostLogRecord);
      done();
    },
  });
  const logger = pino({ level: 'trace', formatters: { level: (label) => ({ level: label }) } }, sink);
  const { found, refused } = await discoverPlugins([path], logger);
  const file = found[0];
  if (!file) throw new Error(`${path} cannot be a plugin: ${refused[0]?.reason ?? 'not found'}`);
  const settings = parsePluginSettings({ pingInterval: 0, plugins: { [file.name]: { ...options.entry, config: options.config ?? {} } } });
  const supervisor = new PluginSupervisor(file, {
    settings,
    entry: settings.plugins[file.name]!,
    logger,
    hostVersion: VERSION,
    restart: false,
    state: new PluginStateHost(options.pluginState ?? memoryPluginState(), logger),
  });
  await supervisor.start();
  const dispatcher: HookDispatcher = buildDispatcher([supervisor], logger, new PluginMetrics(new Registry(), () => [supervisor.status()]));
  let requests = 0;
  return {
    get status() {
      return supervisor.status();
    },
    logs,
    async call(hook, subject, request = {}, context = {}) {
      requests += 1;
      const ctx: HookContext = {
        requestId: `child-test-${requests}`,
        operation: operationsAt(hookSpec(hook).point)[0]!,
        caller: 'root',
        source: 'api',
        deadline: Date.now() + 30_000,
        state: {},
        ...context,
      };
      const result = await runHook(dispatcher, hook, subject, request, ctx);
      return { subject: result, state: ctx.state };
    },
    async deliver(event, attempt = 1) {
      const hook = committedHookName(event.point);
      const subscriber = dispatcher.subscribers?.find((s) => s.hooks.has(hook));
      if (!subscriber) throw new Error(`the plugin does not implement ${hook}, so the server would never deliver this event to it`);
      await subscriber.deliver({ hook, event, attempt });
    },
    stop: () => supervisor.stop(),
  };
}
