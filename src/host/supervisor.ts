// One plugin's life: starting → ready → (crash or hang) → restarting → ready … or → failed.
// Restarts back off exponentially; too many crashes within a window and the plugin stays down
// until the next reload. A periodic `$/ping` catches a plugin that hangs without dying.
import {
  PROTOCOL_VERSIONS,
  type CommittedParams,
  type HookParams,
  type HookResult,
  type InitializeResult,
  type LogLevel,
  type PluginHookName,
  type ActionParams,
  type JsonObject,
  type VerifyMode,
  type VerifyParams,
  type VerifyResult,
} from 'keyhold-plugin-sdk';
import type { Logger } from 'pino';
import { PluginCallError, type FailureMode, type PluginMode } from '../lifecycle/dispatcher.js';
import { PluginClient } from './client.js';
import { checkChecksum, type PluginFile } from './discover.js';
import type { PluginMetrics } from './metrics.js';
import type { PluginStateHost } from './plugin-state.js';
import { spawnPlugin } from './process.js';
import type { PluginEntry, PluginSettings } from './settings.js';
import { checkTrusted } from './trust.js';
import { verifyModeOf } from './verifiers.js';

export type PluginState = 'starting' | 'ready' | 'restarting' | 'failed' | 'stopped';

/** What `keyhold plugin list`, the health endpoint and the API show for one plugin. */
export interface PluginStatus {
  name: string;
  path: string;
  state: PluginState;
  pid: number | null;
  version: string | null;
  hooks: PluginHookName[];
  restarts: number;
  lastError: string | null;
  failureMode: FailureMode;
  mode: PluginMode;
  order: number;
  /** Whether it verifies secrets: the claim rules it declared and the mode it verifies in under the server's settings; null when it does not. */
  verify: { claims: string[]; mode: VerifyMode } | null;
  /** The admin actions it offers (POST /v1/plugins/:name/actions/:action); [] for none. */
  actions: string[];
}

export interface SupervisorOptions {
  settings: PluginSettings;
  entry: PluginEntry;
  logger: Logger;
  metrics?: PluginMetrics | undefined;
  hostVersion: string;
  /** Restart after a crash (false for `plugin verify`, which only wants to know whether it loads). */
  restart: boolean;
  onStateChange?: ((status: PluginStatus) => void) | undefined;
  /** The plugins' state in the server's store; without it (verify, tests) no state is offered. */
  state?: PluginStateHost | undefined;
}

export class PluginSupervisor {
  private state: PluginState = 'starting';
  private client: PluginClient | undefined;
  private version: string | null = null;
  private implemented: PluginHookName[] = [];
  private declared: Pick<InitializeResult, 'verify' | 'actions'> = {};
  private mode: VerifyMode | undefined;
  private restarts = 0;
  private lastError: string | null = null;
  /** Crash times within the current window. */
  private crashTimes: number[] = [];
  /** Crashes since the plugin last ran healthily for `resetAfter`: the backoff exponent. */
  private crashesInARow = 0;
  private readySince: number | undefined;
  /** Why the host killed the process itself (a hang), reported instead of "killed by SIGKILL". */
  private killReason: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  /** The start in progress, which stop() lets finish so that no process is spawned behind its back. */
  private launching: Promise<unknown> | undefined;
  private readonly log: Logger;

  constructor(
    readonly file: PluginFile,
    private readonly options: SupervisorOptions,
  ) {
    this.log = options.logger.child({ plugin: file.name });
  }

  get name(): string {
    return this.file.name;
  }

  get entry(): PluginEntry {
    return this.options.entry;
  }

  /** The hooks the plugin reported at its first handshake: the ones the dispatcher routes to it. */
  get hooks(): readonly PluginHookName[] {
    return this.implemented;
  }

  /** What it declared beside its hooks at its first handshake: verify and admin actions. */
  get declaration(): Pick<InitializeResult, 'verify' | 'actions'> {
    return this.declared;
  }

  /** The mode it verifies in under the server's settings; undefined for a plugin that does not verify. */
  get verifyMode(): VerifyMode | undefined {
    return this.mode;
  }

  /** The first start. Rejects with the exact reason when the plugin cannot be loaded (no restart then). */
  async start(): Promise<void> {
    try {
      const { hooks, verify, actions } = await this.launch();
      this.implemented = hooks;
      this.declared = { ...(verify && { verify }), ...(actions && { actions }) };
      try {
        this.mode = verifyModeOf(this.name, this.options.entry, verify);
      } catch (err) {
        await this.stop();
        throw err;
      }
    } catch (err) {
      this.lastError = (err as Error).message;
      this.setState('failed');
      throw err;
    }
  }

  /** One hook call, or an immediate 'unavailable' when the plugin is not running. */
  call(params: HookParams): Promise<HookResult> {
    if (this.state !== 'ready' || this.client === undefined)
      return Promise.reject(new PluginCallError('unavailable', this.whyUnavailable()));
    // The request's deadline bounds every call: a request that waited gets only the time it has left.
    return this.client.call(params, Math.max(0, Math.min(this.options.entry.timeoutMs, params.context.deadline - Date.now())));
  }

  /** One verify call, bounded like a hook call by the plugin's timeout and the request's deadline. */
  verify(params: VerifyParams): Promise<VerifyResult> {
    if (this.state !== 'ready' || this.client === undefined)
      return Promise.reject(new PluginCallError('unavailable', this.whyUnavailable()));
    return this.client.verify(params, Math.max(0, Math.min(this.options.entry.timeoutMs, params.context.deadline - Date.now())));
  }

  /** One admin action, within the plugin's timeout. */
  action(params: ActionParams): Promise<JsonObject> {
    if (this.state !== 'ready' || this.client === undefined)
      return Promise.reject(new PluginCallError('unavailable', this.whyUnavailable()));
    return this.client.action(params, this.options.entry.timeoutMs);
  }

  /** One committed event delivery, or an immediate 'unavailable' when the plugin is not running. */
  deliver(params: CommittedParams): Promise<void> {
    if (this.state !== 'ready' || this.client === undefined)
      return Promise.reject(new PluginCallError('unavailable', this.whyUnavailable()));
    return this.client.committed(params, this.options.entry.timeoutMs);
  }

  /** The plugin's own checks, within its timeout (see PluginClient.selfCheck); for `keyhold plugin verify`. */
  selfCheck(): Promise<boolean> {
    if (this.state !== 'ready' || this.client === undefined) return Promise.reject(new Error(this.whyUnavailable()));
    return this.client.selfCheck(this.options.entry.timeoutMs);
  }

  /** Stops the plugin after the calls in flight: shutdown request, grace, SIGTERM, grace, SIGKILL. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    await this.launching?.catch(() => undefined);
    const client = this.client;
    if (client !== undefined) {
      const exit = await client.stop(this.options.settings.shutdownGraceMs);
      this.log.info({ exit }, 'plugin stopped');
    }
    this.setState('stopped');
  }

  status(): PluginStatus {
    return {
      name: this.name,
      path: this.file.path,
      state: this.state,
      pid: this.state === 'ready' ? (this.client?.pid ?? null) : null,
      version: this.version,
      hooks: [...this.implemented],
      restarts: this.restarts,
      lastError: this.lastError,
      failureMode: this.options.entry.failureMode,
      mode: this.options.entry.mode,
      order: this.options.entry.order,
      verify: this.declared.verify && this.mode ? { claims: [...this.declared.verify.claims], mode: this.mode } : null,
      actions: [...(this.declared.actions ?? [])],
    };
  }

  private launch(): Promise<InitializeResult> {
    const launching = this.spawnAndHandshake();
    this.launching = launching;
    return launching;
  }

  /** Trust and checksum, spawn and handshake; on success the plugin is ready and watched. */
  private async spawnAndHandshake(): Promise<InitializeResult> {
    const { settings, entry } = this.options;
    if (!settings.allowUntrustedFiles) await checkTrusted(this.file.path);
    if (entry.sha256 !== undefined) await checkChecksum(this.file.path, entry.sha256);
    if (this.stopping) throw new Error('the host is stopping the plugin');
    const { state } = this.options;
    const client = new PluginClient(spawnPlugin(this.file), { name: this.name, logger: this.options.logger, state });
    this.client = client;
    this.killReason = undefined;
    let info;
    try {
      info = await client.initialize(
        {
          protocolVersions: [...PROTOCOL_VERSIONS],
          hostVersion: this.options.hostVersion,
          pluginName: this.name,
          config: entry.config,
          logLevel: this.logLevel(),
          ...(state && { capabilities: { state: state.limits } }),
        },
        settings.startTimeoutMs,
      );
    } catch (err) {
      client.kill();
      await client.exited;
      throw err;
    }
    if (this.implemented.length > 0 && info.hooks.join() !== this.implemented.join()) {
      this.log.warn(
        { reported: info.hooks, routed: this.implemented },
        'the restarted plugin reports other hooks than when it was loaded; run a reload to route calls by the new list',
      );
    }
    this.version = info.version;
    this.readySince = Date.now();
    this.setState('ready');
    this.log.info({ pid: client.pid, version: info.version, hooks: info.hooks, protocolVersion: info.protocolVersion }, 'plugin ready');
    void client.closed.then((reason) => this.onClosed(client, reason));
    this.schedulePing(client);
    return info;
  }

  private logLevel(): LogLevel {
    const level = this.options.logger.level;
    return level === 'silent' ? 'fatal' : (level as LogLevel);
  }

  private onClosed(client: PluginClient, reason: string): void {
    if (client !== this.client || this.stopping) return;
    this.crashed(this.killReason ?? reason);
  }

  private crashed(reason: string): void {
    clearTimeout(this.timer); // a pending ping of the dead process
    const { restart: policy } = this.options.settings;
    const now = Date.now();
    if (this.readySince !== undefined && now - this.readySince >= policy.resetAfterMs) this.crashesInARow = 0;
    this.readySince = undefined;
    this.lastError = reason;
    this.crashTimes = this.crashTimes.filter((t) => now - t < policy.windowMs);
    this.crashTimes.push(now);
    if (!this.options.restart || this.crashTimes.length >= policy.maxCrashes) {
      this.setState('failed');
      this.log.error(
        { reason, crashes: this.crashTimes.length, windowMs: policy.windowMs },
        this.options.restart
          ? `plugin crashed ${this.crashTimes.length} times within ${policy.windowMs} ms; it stays down until a reload (fix it, then run keyhold plugin reload): ${reason}`
          : `plugin crashed: ${reason}`,
      );
      return;
    }
    const delay = Math.min(policy.initialDelayMs * 2 ** this.crashesInARow, policy.maxDelayMs);
    this.crashesInARow++;
    this.setState('restarting');
    this.log.error({ reason, restartInMs: delay }, `plugin crashed, restarting in ${delay} ms: ${reason}`);
    this.timer = setTimeout(() => void this.restart(), delay).unref();
  }

  private async restart(): Promise<void> {
    if (this.stopping) return;
    this.restarts++;
    this.options.metrics?.restarted(this.name);
    try {
      await this.launch();
    } catch (err) {
      if (!this.stopping) this.crashed(`restart failed: ${(err as Error).message}`);
    }
  }

  /** Pings while ready, one at a time; an unanswered ping means the plugin hangs: kill it, which makes it restart. */
  private schedulePing(client: PluginClient): void {
    const { pingIntervalMs } = this.options.settings;
    if (pingIntervalMs <= 0) return;
    this.timer = setTimeout(async () => {
      try {
        await client.ping(this.options.entry.timeoutMs);
      } catch (err) {
        if (client !== this.client || this.state !== 'ready' || !(err instanceof PluginCallError) || err.kind !== 'timeout') return;
        this.killReason = `the plugin hung: no answer to $/ping within ${this.options.entry.timeoutMs} ms, so it was killed`;
        client.kill();
        return;
      }
      if (client === this.client && this.state === 'ready' && !this.stopping) this.schedulePing(client);
    }, pingIntervalMs).unref();
  }

  private whyUnavailable(): string {
    switch (this.state) {
      case 'restarting':
        return `the plugin is restarting after a crash (${this.lastError})`;
      case 'failed':
        return `the plugin has failed and stays down until a reload (${this.lastError})`;
      default:
        return `the plugin is ${this.state}`;
    }
  }

  private setState(state: PluginState): void {
    this.state = state;
    this.options.onStateChange?.(this.status());
  }
}
