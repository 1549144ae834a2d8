// Runs a plugin's hooks in-process, the way the host would call them but without a server or a
// child process: values cross a JSON round trip as on the wire, results are checked by the
// server's own rules (../contract.ts), committed events are delivered as the outbox would, time
// comes from a clock the test moves, log records are kept for assertions, and `this.state` keeps
// its keys in memory under the host's own rules (StateService: limits, TTL, CAS).
// From the SDK's entry, not its modules: the bundled SDK is one file, and this module must share its
// state (the log route) and classes instead of bundling copies of its own.
import {
  checkHookResult,
  COMMITTED_HOOKS,
  ContractViolation,
  DEADLINE_PASSED,
  deadlinePassed,
  hookName,
  hookSpec,
  implementedHooks,
  jsonEqual,
  operationProblem,
  operationsAt,
  MemoryStateBackend,
  parseDuration,
  pointChange,
  returnedProblem,
  routeLogsToHost,
  StateError,
  StateService,
  unchanged,
  type CommittedEvent,
  type CommittedEventOf,
  type CommittedHookName,
  type DeliveryContext,
  type HookContext,
  type HookName,
  type JsonObject,
  type LifecyclePoint,
  type LogParams,
  type NullPlugin,
  type OperationName,
  type PluginContext,
  type PluginHookName,
  type PluginState,
  type StateTransport,
  type Subject,
  type Entity,
  type VerifyMode,
  type VerifyResult,
  type PluginVerifyContext,
  declaredExtras,
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
  /** The name the server knows the plugin by (its file name without the extension), used in error messages as the server does; default the plugin's `name`. */
  name?: string;
}

export interface HookOutcome<S> {
  subject: S;
  state: JsonObject;
}

type HookFn = (subject: Subject, request: JsonObject, context: PluginContext) => unknown;
type CommittedFn = (event: CommittedEvent, context: DeliveryContext) => void | Promise<void>;

/** What a test gives to deliver an event: at least `before` or `after`; the harness fills in the rest. */
export type EventInit<H extends CommittedHookName> = Partial<CommittedEventOf<H>> &
  ({ before: CommittedEventOf<H>['before'] } | { after: CommittedEventOf<H>['after'] });

/** A JSON copy, so a plugin sees what it would see on the wire and cannot keep references into the test's objects. */
function wire<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

export class PluginHarness<P extends NullPlugin> {
  readonly clock: FakeClock;
  /** The plugin's log records, as they would reach the host in `$/log` notifications. */
  readonly logs: LogParams[] = [];
  /** The plugin's name in error messages, as the server would word them. */
  readonly name: string;
  /** The plugin's state namespace, in memory: what `plugin.state` reads and writes, for a test to look at or set up. */
  readonly stateEntries = new MemoryStateBackend();
  private readonly caller: string | null;
  private requests = 0;
  private events = 0;

  private constructor(
    readonly plugin: P,
    options: HarnessOptions,
  ) {
    this.clock = new FakeClock(options.startTime ?? Date.UTC(2026, 0, 1));
    this.caller = options.caller === undefined ? 'root' : options.caller;
    this.name = options.name ?? (plugin.name || 'plugin');
    // Every SDK logger writes through one route, so the most recently started harness collects the records.
    routeLogsToHost((record) => this.logs.push(record));
    plugin.logger.level = 'trace';
    plugin.now = () => this.clock.now();
    const service = new StateService(this.stateEntries, () => this.clock.now());
    // As over the wire: params and results cross a JSON copy, refusals are StateErrors with the host's code and words.
    plugin.state.connect(((method, params) =>
      service.handle(method, wire(params)).then(wire, (err: unknown) => {
        throw err instanceof StateError ? err : new StateError(-32603, String(err));
      })) as StateTransport);
  }

  /** The plugin's state API itself (plugin.state), for a test to look at or set up keys as an operator would. */
  get state(): PluginState {
    return this.plugin.state;
  }

  /** Configures `plugin` as the handshake would; rejects with the plugin's error if it refuses the config. */
  static async start<P extends NullPlugin>(plugin: P, options: HarnessOptions = {}): Promise<PluginHarness<P>> {
    const harness = new PluginHarness(plugin, options);
    plugin.config = wire(options.config ?? {});
    await plugin.configure(plugin.config);
    return harness;
  }

  /**
   * A context as the host builds one for a hook at `point`: a fresh request id, the point's first
   * operation, source "api", the clock's time plus 2 s as deadline. An operation the host would never
   * send there (not in OPERATIONS, or listed at another point) is refused, as the SDK's serve() refuses it.
   */
  context(point: LifecyclePoint, overrides: Partial<HookContext> = {}): HookContext {
    this.requests += 1;
    const context: HookContext = {
      requestId: `test-${this.requests}`,
      operation: operationsAt(point)[0]!,
      caller: this.caller,
      source: 'api',
      deadline: this.clock.now() + 2000,
      state: {},
      ...overrides,
    };
    const problem = operationProblem(context.operation, point);
    if (problem) throw new Error(problem);
    return context;
  }

  /**
   * Calls one hook. A Veto or any other error the hook throws is passed through unchanged; a hook
   * answering `unchanged` gives back the object it was given. What the server would refuse is
   * refused here with the server's own message (a ContractViolation): a call after the request's
   * deadline, a hook that returns no object, a result that does not fit the schema, changes an id,
   * number, name, memberships or the secret, or leaves no state object.
   * Like the host, it refuses to call a hook the plugin does not implement.
   */
  async call<S extends Subject>(
    hook: HookName,
    subject: S,
    request: JsonObject = {},
    context: Partial<PluginContext> = {},
  ): Promise<HookOutcome<S>> {
    this.mustImplement(hook);
    // `signal` lets a test play the host cancelling the call; it is not JSON, so it is kept out of the copy.
    const { signal = new AbortController().signal, ...fields } = context;
    const ctx: PluginContext = { ...wire(this.context(hookSpec(hook).point, fields)), signal };
    if (deadlinePassed(ctx, this.clock.now())) throw new ContractViolation(this.name, hook, DEADLINE_PASSED);
    const sent = wire(subject);
    const fn = (this.plugin as unknown as Record<HookName, HookFn>)[hook];
    const returned: unknown = await fn.call(this.plugin, wire(subject), wire(request), ctx);
    const problem = returnedProblem(hook, returned);
    if (problem) throw new ContractViolation(this.name, hook, problem);
    // The answer serve() would send (no subject when unchanged), checked as the server checks it.
    const answer = wire(
      returned === unchanged || jsonEqual(returned, sent) ? { state: ctx.state } : { subject: returned, state: ctx.state },
    );
    const checked = checkHookResult(this.name, hook, sent, answer);
    return { subject: checked.subject as S, state: checked.state };
  }

  /**
   * Runs a whole lifecycle point as the engine does: the PRE hook, then `change` (the built-in
   * step: throw to refuse, e.g. when the entity is locked), then the POST hook, with one state bag
   * throughout; a hook the plugin does not implement is skipped, as the host skips it.
   */
  async run<S extends Subject>(
    point: LifecyclePoint,
    subject: S,
    options: { request?: JsonObject; operation?: OperationName; change?: (subject: S) => S | Promise<S> } = {},
  ): Promise<S> {
    const { request = {}, operation, change = (s: S) => s } = options;
    const context = this.context(point, operation === undefined ? {} : { operation });
    const pre = await this.callIfImplemented(hookName('pre', point), subject, request, context);
    // POST hooks of a point that changes an existing object get it as it was, as the host sends it.
    const before = pointChange(point) === 'update' ? { before: subject } : {};
    const post = await this.callIfImplemented(hookName('post', point), await change(pre.subject), request, {
      ...context,
      ...before,
      state: pre.state,
    });
    return post.subject;
  }

  /**
   * Delivers one committed event to `hook`, as the outbox would after a commit, and returns the
   * event delivered. Fields not given are filled in: the next seq, a fresh request id, the clock's
   * time, the subject's kind and key from `after` (or `before`), the point's first operation,
   * request {}. An operation the host would never send there is refused, as serve() refuses it.
   * An error the hook throws is passed through (the host would deliver the event again).
   */
  async deliver<H extends CommittedHookName>(
    hook: H,
    init: EventInit<H>,
    options: Partial<DeliveryContext> = {},
  ): Promise<CommittedEventOf<H>> {
    this.mustImplement(hook);
    const spec = COMMITTED_HOOKS.find((h) => h.name === hook)!;
    const subject = (('after' in init && init.after) || ('before' in init && init.before)) as Subject | null | undefined;
    this.events += 1;
    this.requests += 1;
    const event = {
      seq: this.events,
      point: spec.point,
      operation: operationsAt(spec.point)[0]!,
      subjectKind: spec.subject,
      subjectKey: subject ? ('id' in subject ? subject.id : subject.name) : '',
      before: null,
      after: null,
      request: {},
      requestId: `test-${this.requests}`,
      caller: this.caller,
      at: new Date(this.clock.now()).toISOString(),
      ...init,
    } as CommittedEventOf<H>;
    const problem = operationProblem(event.operation, spec.point);
    if (problem) throw new Error(problem);
    const fn = (this.plugin as unknown as Record<CommittedHookName, CommittedFn>)[hook];
    await fn.call(this.plugin, wire(event), { attempt: options.attempt ?? 1, signal: options.signal ?? new AbortController().signal });
    return event;
  }

  /**
   * Calls verify as the host would for an entity the plugin claims, in `mode` (default: the first
   * mode it declares). Refuses, as the host would never call it, a plugin that does not verify.
   */
  async verify(entity: Entity, secret: string, mode?: VerifyMode): Promise<VerifyResult> {
    const declared = declaredExtras(this.plugin).verify;
    if (!declared) throw new Error('the plugin does not override verify, so the host would never call it');
    const { state: _state, ...context } = this.context('AuthCheck');
    const ctx: PluginVerifyContext = { ...context, mode: mode ?? declared.modes[0]!, signal: new AbortController().signal };
    return wire(await this.plugin.verify(wire(entity), secret, ctx));
  }

  /** Runs one of the plugin's admin actions as the host would for a GLOBAL_ROOT caller. */
  async action(name: string, args: JsonObject = {}): Promise<JsonObject> {
    const method = Object.hasOwn(this.plugin.actions, name) ? this.plugin.actions[name] : undefined;
    if (!method) throw new Error(`the plugin has no action "${name}"`);
    const { requestId, caller } = this.context('AuthCheck');
    return wire(await method.call(this.plugin, wire(args), { requestId, caller }));
  }

  private mustImplement(hook: PluginHookName): void {
    if (!implementedHooks(this.plugin).includes(hook))
      throw new Error(`the plugin does not implement ${hook}, so the host would never call it`);
  }

  private callIfImplemented<S extends Subject>(
    hook: HookName,
    subject: S,
    request: JsonObject,
    context: HookContext,
  ): Promise<HookOutcome<S>> {
    return implementedHooks(this.plugin).includes(hook)
      ? this.call(hook, subject, request, context)
      : Promise.resolve({ subject, state: context.state });
  }
}
