// serve(plugin): the plugin side of the wire. Checks the magic cookie, answers the handshake,
// calls the plugin's hook and committed methods for the host's requests and keeps stdout for the wire alone.
import { returnedProblem } from './contract.js';
import {
  COMMITTED_HOOKS,
  hookSpec,
  operationProblem,
  type CommittedHookName,
  type HookName,
  type LifecyclePoint,
  type PluginHookName,
} from './hooks.js';
import { copyJson, jsonEqual } from './json.js';
import { routeLogsToHost } from './logger.js';
import type { Entity, Group } from './model.js';
import { StateError } from './plugin-state.js';
import {
  declaredExtras,
  implementedHooks,
  type DeliveryContext,
  type NullPlugin,
  type PluginContext,
  type PluginVerifyContext,
} from './null-plugin.js';
import { isThenable, RpcEndpoint, RpcError, RpcErrorCodes, type RequestCall } from './rpc-endpoint.js';
import type { StateTransport } from './state-client.js';
import {
  MAGIC_COOKIE_KEY,
  MAGIC_COOKIE_VALUE,
  negotiateProtocol,
  PluginErrorCodes,
  PROTOCOL_VERSIONS,
  type CommittedEvent,
  type CommittedParams,
  type HookContext,
  type HookParams,
  type HookResult,
  type InitializeParams,
  type InitializeResult,
  type JsonObject,
  type ActionParams,
  type VerifyParams,
  type VerifyResult,
} from './protocol.js';
import { unchanged } from './unchanged.js';

const RUN_BY_HAND =
  "This is a keyhold plugin. It is started by the keyhold server, not run directly: drop it into the server's plugin directory.";

/**
 * Exits, ending the plugin's process group on the way: the host starts every plugin as the leader
 * of a group of its own, so the processes the plugin started (and did not move to another group)
 * get SIGTERM instead of outliving it, also when the host was killed and cannot end them itself.
 */
function exitWithGroup(code: number): never {
  // The group's SIGTERM reaches this process too: ignored, so that the exit status is `code`.
  process.on('SIGTERM', () => {});
  try {
    process.kill(-process.pid, 'SIGTERM');
  } catch {
    // ESRCH: not a group leader (started by something other than the host), no group of its own to end.
  }
  process.exit(code);
}

/**
 * Takes fd 1 for the wire and points process.stdout.write (and so console.log) at stderr, which
 * the host keeps as log lines: a stray print can then never corrupt a message. Done when this
 * module is first imported, i.e. before the plugin's own top-level code runs, and only inside a
 * plugin process (the cookie is set), so that the server and tests importing the SDK keep their stdout.
 * A plugin that speaks the protocol without serve() must therefore not import the SDK.
 * Returns the write to the pipe itself: frames go to it directly, strings as they are.
 */
function claimStdout(): (data: string) => void {
  const stdout = process.stdout;
  const writeToPipe = stdout.write.bind(stdout);
  stdout.write = process.stderr.write.bind(process.stderr) as typeof stdout.write;
  // The host is gone when its end of the pipe is: nothing left to do.
  stdout.on('error', () => exitWithGroup(0));
  return (data) => void writeToPipe(data);
}

const wire = process.env[MAGIC_COOKIE_KEY] === MAGIC_COOKIE_VALUE ? claimStdout() : undefined;

/**
 * The context a hook receives (the host's HookContext copied onto it), or a committed hook (its
 * DeliveryContext), with `signal`, aborted when the host sends `$/cancelRequest` for the call (it timed out). The AbortController is made only
 * when the hook reads the signal: most hooks never do, and one per call is not free. (A class
 * rather than a getter defined on the context: defining one cost about 1 µs per call.)
 */
class CallContext {
  readonly #hook: PluginHookName | 'verify';
  readonly #call: RequestCall;
  #controller: AbortController | undefined;

  constructor(hook: PluginHookName | 'verify', call: RequestCall) {
    this.#hook = hook;
    this.#call = call;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      const controller = (this.#controller = new AbortController());
      this.#call.onCancel(() => controller.abort(new Error(`the host cancelled ${this.#hook}: it stopped waiting for the answer`)));
    }
    return this.#controller.signal;
  }
}

function pluginContext(context: HookContext, hook: HookName, call: RequestCall): PluginContext {
  return Object.assign(new CallContext(hook, call), context) as unknown as PluginContext;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isVeto(err: unknown): boolean {
  // By name too: a plugin may bundle its own copy of the SDK, whose Veto is another class.
  return err instanceof Error && err.name === 'Veto';
}

type HookFn = (subject: Entity | Group, request: JsonObject, context: PluginContext) => unknown;

const committedPoint = new Map<CommittedHookName, LifecyclePoint>(COMMITTED_HOOKS.map((h) => [h.name, h.point]));

/** Refuses a call whose operation is not one OPERATIONS lists at its point: the plugin is never given a name its types do not know. */
function checkOperation(operation: unknown, point: LifecyclePoint): void {
  const problem = operationProblem(operation, point);
  if (problem) throw new RpcError(RpcErrorCodes.InvalidParams, problem);
}

/** Serves `plugin` on stdin/stdout until the host sends shutdown or closes stdin. */
export function serve(plugin: NullPlugin): void {
  if (!wire) {
    process.stderr.write(`${RUN_BY_HAND}\n`);
    process.exit(1);
  }
  // Known after configure(): a plugin may set up its hooks from its config.
  let hooks = new Set<PluginHookName>();
  let extras: ReturnType<typeof declaredExtras> = {};
  // The hooks whose last answer was the very object they were given: only for those can a copy
  // made before the call tell an unchanged object (not sent back) from one changed in place.
  // Hooks that answer `unchanged`, or a new object, are not copied for.
  const copyBefore = new Set<PluginHookName>();

  // stdin closed: the host stopped us, or died (even by SIGKILL). Either way there is no one left to serve.
  const endpoint = new RpcEndpoint(
    process.stdin,
    wire,
    () => exitWithGroup(0),
    (err) => {
      // The host's stream cannot be read any further (a broken host): stop, saying why.
      process.stderr.write(`keyhold plugin: stopping: the host ${err.message}\n`);
      exitWithGroup(1);
    },
  );

  endpoint.onRequest('initialize', async (params: InitializeParams): Promise<InitializeResult> => {
    let protocolVersion: number;
    try {
      protocolVersion = negotiateProtocol(params.protocolVersions, PROTOCOL_VERSIONS);
    } catch (err) {
      throw new RpcError(PluginErrorCodes.UnsupportedProtocol, messageOf(err));
    }
    plugin.logger.level = params.logLevel;
    plugin.config = params.config;
    // State requests go to the host when it offers state; an answer with an error becomes a StateError with the host's code and message.
    if (params.capabilities?.state)
      plugin.state.connect(((method, stateParams) =>
        endpoint.request(method, stateParams).catch((err: RpcError) => {
          throw new StateError(err.code, err.message);
        })) as StateTransport);
    try {
      await plugin.configure(params.config);
    } catch (err) {
      throw new RpcError(PluginErrorCodes.ConfigRejected, messageOf(err));
    }
    hooks = new Set(implementedHooks(plugin));
    for (const hook of hooks) copyBefore.add(hook);
    extras = declaredExtras(plugin);
    return { name: plugin.name || params.pluginName, version: plugin.version, protocolVersion, hooks: [...hooks], ...extras };
  });

  /** What the hook's answer `result` tells the host; throws when it is no answer at all. */
  const answer = (hook: HookName, subject: Entity | Group, sent: unknown, context: PluginContext, result: unknown): HookResult => {
    if (result === unchanged) {
      copyBefore.delete(hook);
      return { state: context.state };
    }
    // The contract's rule (contract.ts): a hook that forgot its return must not pass for "unchanged".
    const problem = returnedProblem(hook, result);
    if (problem) throw new Error(problem);
    if (result === subject) copyBefore.add(hook);
    else copyBefore.delete(hook);
    return sent !== undefined && jsonEqual(result, sent)
      ? { state: context.state }
      : { subject: result as Entity | Group, state: context.state };
  };

  const failure = (hook: HookName, call: RequestCall, err: unknown): RpcError => {
    if (isVeto(err)) return new RpcError(PluginErrorCodes.Veto, messageOf(err));
    // After a cancellation nobody waits for the answer: a hook ending on the aborted signal is no failure to log.
    if (!call.cancelled) plugin.logger.error({ err, hook }, `${hook} failed`);
    return new RpcError(RpcErrorCodes.InternalError, messageOf(err));
  };

  endpoint.onRequest('hook', ({ hook, subject, request, context }: HookParams, call): HookResult | Promise<HookResult> => {
    if (!hooks.has(hook)) throw new RpcError(PluginErrorCodes.UnknownHook, `this plugin does not implement ${hook}`);
    checkOperation(context.operation, hookSpec(hook).point);
    // As sent, to tell whether the hook changed it in place.
    const sent = copyBefore.has(hook) ? copyJson(subject) : undefined;
    // The state the host reads back is the one on the hook's context: the hook may replace it.
    const hookContext = pluginContext(context, hook, call);
    try {
      // The host sends each hook the kind of object its point is about (checked on the host side).
      const result = (plugin[hook] as unknown as HookFn).call(plugin, subject, request, hookContext);
      if (!isThenable(result)) return answer(hook, subject, sent, hookContext, result);
      return Promise.resolve(result)
        .then((value) => answer(hook, subject, sent, hookContext, value))
        .catch((err: unknown) => {
          throw failure(hook, call, err);
        });
    } catch (err) {
      throw failure(hook, call, err);
    }
  });

  endpoint.onRequest('committed', async ({ hook, event, attempt }: CommittedParams, call): Promise<null> => {
    if (!hooks.has(hook)) throw new RpcError(PluginErrorCodes.UnknownHook, `this plugin does not implement ${hook}`);
    checkOperation(event.operation, committedPoint.get(hook)!);
    const context = Object.assign(new CallContext(hook, call), { attempt }) as unknown as DeliveryContext;
    try {
      // The host sends each committed hook the events of its own point.
      const method = plugin[hook] as unknown as (e: CommittedEvent, c: DeliveryContext) => void | Promise<void>;
      await method.call(plugin, event, context);
      return null;
    } catch (err) {
      // Not a veto whatever it is: the change is committed; the host delivers the event again later.
      if (!call.cancelled) plugin.logger.error({ err, hook, seq: event.seq }, `${hook} failed`);
      throw new RpcError(RpcErrorCodes.InternalError, messageOf(err));
    }
  });

  endpoint.onRequest('verify', async ({ entity, secret, mode, context }: VerifyParams, call): Promise<VerifyResult> => {
    if (!extras.verify) throw new RpcError(PluginErrorCodes.UnknownHook, 'this plugin does not verify secrets');
    const verifyContext = Object.assign(new CallContext('verify', call), context, { mode }) as unknown as PluginVerifyContext;
    try {
      return await plugin.verify(entity, secret, verifyContext);
    } catch (err) {
      // A Veto is an answer (refused); anything else fails the login closed on the host's side.
      if (isVeto(err)) return { ok: false, reason: messageOf(err) };
      if (!call.cancelled) plugin.logger.error({ err, entity: entity.id }, 'verify failed');
      throw new RpcError(RpcErrorCodes.InternalError, messageOf(err));
    }
  });

  endpoint.onRequest('action', async ({ action, args, context }: ActionParams): Promise<JsonObject> => {
    const method = Object.hasOwn(plugin.actions, action) ? plugin.actions[action] : undefined;
    if (!method) throw new RpcError(PluginErrorCodes.UnknownHook, `this plugin has no action "${action}"`);
    try {
      return await method.call(plugin, args, context);
    } catch (err) {
      if (isVeto(err)) throw new RpcError(PluginErrorCodes.Veto, messageOf(err));
      plugin.logger.error({ err, action }, `action ${action} failed`);
      throw new RpcError(RpcErrorCodes.InternalError, messageOf(err));
    }
  });

  endpoint.onRequest('selfCheck', async (): Promise<null> => {
    if (!plugin.selfCheck) throw new RpcError(RpcErrorCodes.MethodNotFound, 'this plugin has no self-check');
    try {
      await plugin.selfCheck();
      return null;
    } catch (err) {
      throw new RpcError(RpcErrorCodes.InternalError, messageOf(err));
    }
  });

  endpoint.onRequest('$/ping', () => null);
  // The host closes stdin right after this answer; the exit follows from that.
  endpoint.onRequest('shutdown', () => null);

  routeLogsToHost((record) => endpoint.notify('$/log', record));
  endpoint.listen();
}
