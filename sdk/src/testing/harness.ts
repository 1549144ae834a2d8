// Runs a plugin's hooks in-process, the way the host would call them but without a server or a
// child process: values cross a JSON round trip as on the wire, results are checked against the
// schema, time comes from a clock the test moves, and log records are kept for assertions.
// From the SDK's entry, not its modules: the bundled SDK is one file, and this module must share its
// state (the log route) and classes instead of bundling copies of its own.
import {
  hookName,
  hookSpec,
  implementedHooks,
  parseDuration,
  parseEntity,
  parseGroup,
  routeLogsToHost,
  unchanged,
  type Entity,
  type Group,
  type HookContext,
  type HookName,
  type JsonObject,
  type LifecyclePoint,
  type LogParams,
  type NullPlugin,
  type PluginContext,
} from '../index.js';

/** A clock that only moves when the test says so. */
export class FakeClock {
  constructor(private current: number) {}

  now(): number {
    return this.current;
  }

  /** Moves forward by milliseconds or a duration string such as "15m". */
  advance(by: number | string): void {
    this.current += parseDuration(by);
  }
}

export interface HarnessOptions {
  /** The plugin's `config:` from the server YAML; passed to configure() as initialize would. */
  config?: JsonObject;
  /** Where the clock starts, epoch ms (default 2026-01-01T00:00:00Z). */
  startTime?: number;
  /** The context.caller hooks see (default "root"). */
  caller?: string | null;
}

export interface HookOutcome<S> {
  subject: S;
  state: JsonObject;
}

type Subject = Entity | Group;
type HookFn = (subject: Subject, request: JsonObject, context: PluginContext) => unknown;

/** A JSON copy, so a plugin sees what it would see on the wire and cannot keep references into the test's objects. */
function wire<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

export class PluginHarness<P extends NullPlugin> {
  readonly clock: FakeClock;
  /** The plugin's log records, as they would reach the host in `$/log` notifications. */
  readonly logs: LogParams[] = [];
  private readonly caller: string | null;
  private requests = 0;

  private constructor(
    readonly plugin: P,
    options: HarnessOptions,
  ) {
    this.clock = new FakeClock(options.startTime ?? Date.UTC(2026, 0, 1));
    this.caller = options.caller === undefined ? 'root' : options.caller;
    // Every SDK logger writes through one route, so the most recently started harness collects the records.
    routeLogsToHost((record) => this.logs.push(record));
    plugin.logger.level = 'trace';
    plugin.now = () => this.clock.now();
  }

  /** Configures `plugin` as the handshake would; rejects with the plugin's error if it refuses the config. */
  static async start<P extends NullPlugin>(plugin: P, options: HarnessOptions = {}): Promise<PluginHarness<P>> {
    const harness = new PluginHarness(plugin, options);
    plugin.config = wire(options.config ?? {});
    await plugin.configure(plugin.config);
    return harness;
  }

  /** A context as the host builds one: a fresh request id, the clock's time plus 2 s as deadline. */
  context(overrides: Partial<HookContext> = {}): HookContext {
    this.requests += 1;
    return { requestId: `test-${this.requests}`, operation: 'test', caller: this.caller, deadline: this.clock.now() + 2000, state: {}, ...overrides };
  }

  /**
   * Calls one hook. A Veto or any other error the hook throws is passed through unchanged; a
   * result that does not fit the schema rejects with the schema's message; a hook answering
   * `unchanged` gives back the object it was given. Like the host, it refuses to call a hook the
   * plugin does not implement.
   */
  async call<S extends Subject>(hook: HookName, subject: S, request: JsonObject = {}, context: Partial<PluginContext> = {}): Promise<HookOutcome<S>> {
    if (!implementedHooks(this.plugin).includes(hook)) throw new Error(`the plugin does not implement ${hook}, so the host would never call it`);
    // `signal` lets a test play the host cancelling the call; it is not JSON, so it is kept out of the copy.
    const { signal = new AbortController().signal, ...fields } = context;
    const ctx: PluginContext = { ...wire(this.context(fields)), signal };
    const fn = (this.plugin as unknown as Record<HookName, HookFn>)[hook];
    const given = wire(subject);
    const answer = await fn.call(this.plugin, given, wire(request), ctx);
    const result: unknown = wire(answer === unchanged ? subject : answer);
    const parsed = hookSpec(hook).subject === 'entity' ? parseEntity(result, 'subject') : parseGroup(result, 'subject');
    return { subject: parsed as S, state: ctx.state };
  }

  /**
   * Runs a whole lifecycle point as the engine does: the PRE hook, then `change` (the built-in
   * step: throw to refuse, e.g. when the entity is locked), then the POST hook, with one state bag
   * throughout; a hook the plugin does not implement is skipped, as the host skips it.
   */
  async run<S extends Subject>(point: LifecyclePoint, subject: S, options: { request?: JsonObject; operation?: string; change?: (subject: S) => S | Promise<S> } = {}): Promise<S> {
    const { request = {}, operation = 'test', change = (s: S) => s } = options;
    const context = this.context({ operation });
    const pre = await this.callIfImplemented(hookName('pre', point), subject, request, context);
    const post = await this.callIfImplemented(hookName('post', point), await change(pre.subject), request, { ...context, state: pre.state });
    return post.subject;
  }

  private callIfImplemented<S extends Subject>(hook: HookName, subject: S, request: JsonObject, context: HookContext): Promise<HookOutcome<S>> {
    return implementedHooks(this.plugin).includes(hook) ? this.call(hook, subject, request, context) : Promise.resolve({ subject, state: context.state });
  }
}
