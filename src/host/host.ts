// PluginHost: the server's plugin set. Starts every plugin in parallel, hands the engine a
// dispatcher over the set, reloads without a restart (with the settings read again; all-or-nothing:
// a new set replaces the old only when every plugin in it loaded and none could lock every login
// out, see break-glass.ts) and stops the set at shutdown.
import { statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { HookDispatcher } from '../lifecycle/dispatcher.js';
import { REQUEST_DEADLINE_MS } from '../lifecycle/engine.js';
import { VERSION } from '../version.js';
import type { JsonObject } from 'keyhold-plugin-sdk';
import { runAction } from './actions.js';
import { resolveExemptions, type AccountDirectory } from './break-glass.js';
import { discoverPlugins } from './discover.js';
import { buildDispatcher, byCallOrder, type PluginSetDispatcher } from './dispatch.js';
import { PluginMetrics } from './metrics.js';
import { PluginStateHost } from './plugin-state.js';
import { pluginEntry, type PluginSettings } from './settings.js';
import type { PluginStateStore } from '../store/plugin-state.js';
import { PluginSupervisor, type PluginStatus } from './supervisor.js';

export interface LoadFailure {
  name: string;
  path: string;
  reason: string;
}

/** Thrown by PluginHost.start when a plugin cannot be loaded; nothing is left running then. */
export class PluginLoadError extends Error {
  constructor(readonly failures: readonly LoadFailure[]) {
    super(`${failures.length} plugin(s) could not be loaded: ${failures.map((f) => `${f.name} (${f.path}): ${f.reason}`).join('; ')}`);
    this.name = 'PluginLoadError';
  }
}

export interface LoadOptions {
  logger: Logger;
  hostVersion: string;
  /** Supervise with restarts (the server) or not (verify). */
  restart: boolean;
  metrics?: PluginMetrics | undefined;
  onStateChange?: ((status: PluginStatus) => void) | undefined;
  /** Plugin state: offered to the plugins when given. */
  state?: PluginStateHost | undefined;
}

export interface LoadOutcome {
  loaded: PluginSupervisor[];
  failures: LoadFailure[];
}

/** A set the host loaded: the plugins and each one's exempt entities. */
interface LoadedSet extends LoadOutcome {
  exemptions: ReadonlyMap<string, ReadonlySet<string>>;
}

/** Discovers the plugins in `paths` and starts every enabled one in parallel, each within the start timeout. */
export async function loadPlugins(paths: readonly string[], settings: PluginSettings, options: LoadOptions): Promise<LoadOutcome> {
  const { logger } = options;
  if (settings.allowUntrustedFiles)
    logger.warn(
      `DANGEROUS: plugins.allowUntrustedFiles is true: plugin files and directories that other users can change are run as the server's user; set it to false and fix their owner and mode (see docs/security.md)`,
    );
  const { found, refused } = await discoverPlugins(paths, logger, !settings.allowUntrustedFiles);
  const failures: LoadFailure[] = refused.map(({ name, path, reason }) => ({ name, path, reason }));
  for (const name of Object.keys(settings.plugins)) {
    if (!found.some((f) => f.name === name))
      logger.warn({ plugin: name }, `the settings configure plugin "${name}", but no such plugin was found`);
  }
  const enabled = found.filter((file) => {
    if (pluginEntry(settings, file.name).enabled) return true;
    logger.info({ plugin: file.name, path: file.path }, 'plugin disabled in the settings: not started');
    return false;
  });
  const supervisors = enabled.map((file) => new PluginSupervisor(file, { ...options, settings, entry: pluginEntry(settings, file.name) }));
  const started = await Promise.allSettled(supervisors.map((s) => s.start()));
  const loaded: PluginSupervisor[] = [];
  started.forEach((result, i) => {
    const supervisor = supervisors[i]!;
    if (result.status === 'fulfilled') loaded.push(supervisor);
    else failures.push({ name: supervisor.name, path: supervisor.file.path, reason: (result.reason as Error).message });
  });
  return { loaded, failures };
}

export function stopPlugins(plugins: readonly PluginSupervisor[]): Promise<unknown> {
  return Promise.all(plugins.map((p) => p.stop()));
}

export interface PluginHostOptions {
  settings: PluginSettings;
  logger: Logger;
  /** Where the plugin metrics are registered (default: a registry of the host's own). */
  registry?: Registry;
  /** Told to plugins at initialize (default: this keyhold's version). */
  hostVersion?: string;
  /** What relative `directory` and `list` paths are relative to (default: the working directory). */
  baseDir?: string;
  /** Called with the new dispatcher after start and after every reload that swapped the set. */
  onSwap?: (dispatcher: HookDispatcher) => void;
  /**
   * Reads the settings again for a reload given none (the server: the `plugins:` section of its
   * settings file, re-read and checked); throws an Error saying what is wrong with them.
   * Default: a reload keeps the settings it has.
   */
  readSettings?: () => PluginSettings;
  /**
   * The accounts, for break-glass: the bootstrap root is then the default exemption of AuthCheck
   * plugins, and a set with a plugin that could lock every login out is refused. Without it (tests)
   * plugins exempt what their settings list, and nothing is refused for it.
   */
  accounts?: AccountDirectory;
  /** The server store's plugin state: each plugin gets its own namespace of it (docs/protocol.md, "State"). Without it no state is offered. */
  pluginState?: PluginStateStore;
}

export interface ReloadResult {
  /** False when the settings could not be read or a plugin of the new set failed to load: the old set keeps serving. */
  swapped: boolean;
  /** Why the settings could not be read (nothing was started then). */
  settingsError?: string;
  failures: LoadFailure[];
  /** The plugins serving after the reload. */
  plugins: PluginStatus[];
}

export class PluginHost {
  readonly metrics: PluginMetrics;
  private settings: PluginSettings;
  private plugins: PluginSupervisor[] = [];
  private current: PluginSetDispatcher;
  /** start, reload and stop run one at a time (a SIGHUP during an API reload waits its turn). */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly listeners = new Set<(status: PluginStatus) => void>();
  private readonly state: PluginStateHost | undefined;

  constructor(private readonly options: PluginHostOptions) {
    this.settings = options.settings;
    this.state = options.pluginState && new PluginStateHost(options.pluginState, options.logger);
    this.metrics = new PluginMetrics(options.registry ?? new Registry(), () => this.status());
    this.current = buildDispatcher([], options.logger, this.metrics);
  }

  /** The dispatcher over the set currently serving; the engine keeps the one a request started with. */
  get dispatcher(): HookDispatcher {
    return this.current;
  }

  /** Starts the configured plugins. Rejects with PluginLoadError (and leaves nothing running) if any fails to load. */
  start(): Promise<HookDispatcher> {
    return this.serialised(async () => {
      // A second set would replace the first without stopping it.
      if (this.plugins.length > 0) throw new Error('the plugin host is already started; use reload() to load the plugins again');
      const { loaded, failures, exemptions } = await this.load(this.settings);
      if (failures.length > 0) {
        await stopPlugins(loaded);
        for (const f of failures)
          this.options.logger.error(
            { plugin: f.name, path: f.path, reason: f.reason },
            `plugin "${f.name}" could not be loaded: ${f.reason}`,
          );
        throw new PluginLoadError(failures);
      }
      this.swap(loaded, exemptions);
      return this.current;
    });
  }

  /**
   * Starts a new set from the plugin directory and `settings` (default: those `readSettings` reads
   * now, else the current ones). If every plugin loads, the new set replaces the old at once and
   * the old processes are stopped once the requests that started on the old set are done;
   * otherwise (or when the settings cannot be read) the old set keeps serving.
   */
  reload(given?: PluginSettings): Promise<ReloadResult> {
    return this.serialised(async () => {
      const { logger, readSettings } = this.options;
      let settings: PluginSettings;
      try {
        settings = given ?? readSettings?.() ?? this.settings;
      } catch (err) {
        const settingsError = (err as Error).message;
        logger.error(
          { settingsError },
          `plugin reload failed, the current plugins keep serving: the settings cannot be read: ${settingsError}`,
        );
        return { swapped: false, settingsError, failures: [], plugins: this.status() };
      }
      const { loaded, failures, exemptions } = await this.load(settings);
      if (failures.length > 0) {
        await stopPlugins(loaded);
        logger.error(
          { failures },
          `plugin reload failed, the current plugins keep serving: ${failures.map((f) => `${f.name}: ${f.reason}`).join('; ')}`,
        );
        return { swapped: false, failures, plugins: this.status() };
      }
      const old = this.plugins;
      const oldSet = this.current;
      this.settings = settings;
      this.swap(loaded, exemptions);
      // A request that started on the old set may still reach its POST hooks: the old processes
      // stay until such requests are done (bounded by how long any request may run).
      await drainedWithin(oldSet, REQUEST_DEADLINE_MS);
      await stopPlugins(old);
      logger.info({ plugins: loaded.map((p) => p.name) }, `plugin set reloaded: ${loaded.length} plugin(s)`);
      return { swapped: true, failures: [], plugins: this.status() };
    });
  }

  /** Stops every plugin (after its calls in flight); calls made afterwards fail as unavailable. */
  stop(): Promise<void> {
    return this.serialised(() => stopPlugins(this.plugins).then(() => undefined));
  }

  /** Runs an admin action of a plugin of the serving set (actions.ts). */
  action(name: string, action: string, args: JsonObject, context: { requestId: string; caller: string | null }): Promise<JsonObject> {
    return runAction(this.plugins, name, action, args, context);
  }

  /** Each plugin of the serving set, in call order. */
  status(): PluginStatus[] {
    return this.plugins.map((p) => p.status());
  }

  /** Tells `listener` about every state change of any plugin (also those of a set being loaded or stopped); returns the unsubscribe function. */
  onStateChange(listener: (status: PluginStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Loads a set; a plugin break-glass refuses counts as one that failed to load. */
  private async load(settings: PluginSettings): Promise<LoadedSet> {
    const paths = this.pluginPaths(settings);
    if (!Array.isArray(paths)) return { loaded: [], failures: [paths], exemptions: new Map() };
    const outcome = await loadPlugins(paths, settings, {
      logger: this.options.logger,
      hostVersion: this.options.hostVersion ?? VERSION,
      restart: true,
      metrics: this.metrics,
      state: this.state,
      onStateChange: (status) => {
        for (const listener of this.listeners) listener(status);
      },
    });
    const { accounts, logger } = this.options;
    if (accounts === undefined || outcome.failures.length > 0) return { ...outcome, exemptions: new Map() };
    try {
      const { byPlugin, refused, warnings } = await resolveExemptions(outcome.loaded, accounts);
      for (const warning of warnings) logger.warn(warning);
      return { loaded: outcome.loaded, failures: refused, exemptions: byPlugin };
    } catch (err) {
      await stopPlugins(outcome.loaded);
      throw err;
    }
  }

  /** The paths to discover plugins in, or why the plugin directory cannot be used. */
  private pluginPaths(settings: PluginSettings): string[] | LoadFailure {
    const base = this.options.baseDir ?? process.cwd();
    if (settings.list !== undefined) return settings.list.map((p) => resolve(base, p));
    const directory = resolve(base, settings.directory);
    const info = statSync(directory, { throwIfNoEntry: false });
    if (info?.isDirectory()) return [directory];
    const failure = (reason: string): LoadFailure => ({ name: basename(directory), path: directory, reason });
    if (info !== undefined)
      return failure(
        `the plugin directory setting (plugins.directory or KEYHOLD_PLUGIN_DIR) names ${directory}, which is not a directory; name the directory the plugins are in, or list plugin files in plugins.list`,
      );
    // Configured on purpose, a missing directory is a mistake that would leave the site's policy out.
    if (settings.directoryConfigured)
      return failure(
        `the configured plugin directory ${directory} does not exist, so none of the site's plugins would run; create it (mkdir -m 755 ${directory}) or correct plugins.directory or KEYHOLD_PLUGIN_DIR`,
      );
    this.options.logger.warn({ directory }, 'the plugin directory does not exist: no plugins loaded');
    return [];
  }

  private swap(loaded: PluginSupervisor[], exemptions: ReadonlyMap<string, ReadonlySet<string>>): void {
    this.plugins = loaded.sort(byCallOrder);
    this.current = buildDispatcher(loaded, this.options.logger, this.metrics, exemptions);
    this.options.onSwap?.(this.current);
  }

  private serialised<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/** Waits until no request holds a lease on `set`, or `ms` at most. */
async function drainedWithin(set: PluginSetDispatcher, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<void>((wake) => {
    timer = setTimeout(wake, ms);
  });
  await Promise.race([set.drained(), timedOut]);
  clearTimeout(timer);
}
