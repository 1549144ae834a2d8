// serve(plugin): the plugin side of the wire. Checks the magic cookie, answers the handshake,
// dispatches hook and committed requests to the plugin's methods and keeps stdout for the wire alone.
import { Writable } from 'node:stream';
import { ErrorCodes, ResponseError, type CancellationToken, type Disposable } from './jsonrpc.js';
import { returnedProblem } from './contract.js';
import type { PluginHookName } from './hooks.js';
import { copyJson, jsonEqual } from './json.js';
import { routeLogsToHost } from './logger.js';
import type { Entity, Group } from './model.js';
import { implementedHooks, type DeliveryContext, type NullPlugin, type PluginContext } from './null-plugin.js';
import { createWireConnection, FramingError } from './wire.js';
import {
  CommittedRequest,
  HookRequest,
  InitializeRequest,
  LogNotification,
  MAGIC_COOKIE_KEY,
  MAGIC_COOKIE_VALUE,
  negotiateProtocol,
  PingRequest,
  PluginErrorCodes,
  PROTOCOL_VERSIONS,
  ShutdownRequest,
  type CommittedEvent,
  type HookContext,
  type HookResult,
} from './protocol.js';

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
 */
function claimStdout(): Writable {
  const stdout = process.stdout;
  const writeToPipe = stdout.write.bind(stdout);
  stdout.write = process.stderr.write.bind(process.stderr) as typeof stdout.write;
  // The host is gone when its end of the pipe is: nothing left to do.
  stdout.on('error', () => exitWithGroup(0));
  return new Writable({
    // Strings pass through as they are: no copy into a Buffer on the way.
    decodeStrings: false,
    write(chunk: string | Buffer, encoding, done) {
      writeToPipe(chunk, encoding, done);
    },
  });
}

const wire = process.env[MAGIC_COOKIE_KEY] === MAGIC_COOKIE_VALUE ? claimStdout() : undefined;

/**
 * `context.signal` for one hook call or delivery: aborted when the host sends `$/cancelRequest` (it timed out).
 * Made only when the hook reads it: most hooks never do, and a signal per call is not free.
 */
class HookCancellation {
  private controller: AbortController | undefined;
  private listener: Disposable | undefined;

  constructor(
    private readonly hook: PluginHookName,
    private readonly token: CancellationToken,
  ) {}

  addSignalTo<C extends object>(context: C): C & { signal: AbortSignal } {
    return Object.defineProperty(context, 'signal', { get: () => this.signal() }) as C & { signal: AbortSignal };
  }

  private signal(): AbortSignal {
    if (!this.controller) {
      const controller = (this.controller = new AbortController());
      const abort = () => controller.abort(new Error(`the host cancelled ${this.hook}: it stopped waiting for the answer`));
      if (this.token.isCancellationRequested) abort();
      else this.listener = this.token.onCancellationRequested(abort);
    }
    return this.controller.signal;
  }

  dispose(): void {
    this.listener?.dispose();
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isVeto(err: unknown): boolean {
  // By name too: a plugin may bundle its own copy of the SDK, whose Veto is another class.
  return err instanceof Error && err.name === 'Veto';
}

/** Serves `plugin` on stdin/stdout until the host sends shutdown or closes stdin. */
export function serve(plugin: NullPlugin): void {
  if (!wire) {
    process.stderr.write(`${RUN_BY_HAND}\n`);
    process.exit(1);
  }
  // Known after configure(): a plugin may set up its hooks from its config.
  let hooks = new Set<PluginHookName>();
  const connection = createWireConnection(process.stdin, wire);

  connection.onRequest(InitializeRequest, async (params) => {
    let protocolVersion: number;
    try {
      protocolVersion = negotiateProtocol(params.protocolVersions, PROTOCOL_VERSIONS);
    } catch (err) {
      throw new ResponseError(PluginErrorCodes.UnsupportedProtocol, messageOf(err));
    }
    plugin.logger.level = params.logLevel;
    plugin.config = params.config;
    try {
      await plugin.configure(params.config);
    } catch (err) {
      throw new ResponseError(PluginErrorCodes.ConfigRejected, messageOf(err));
    }
    hooks = new Set(implementedHooks(plugin));
    return { name: plugin.name || params.pluginName, version: plugin.version, protocolVersion, hooks: [...hooks] };
  });

  connection.onRequest(HookRequest, async ({ hook, subject, request, context }, token): Promise<HookResult> => {
    if (!hooks.has(hook)) throw new ResponseError(PluginErrorCodes.UnknownHook, `this plugin does not implement ${hook}`);
    // As sent, to tell whether the hook changed it (even in place): an unchanged subject is not sent back.
    const sent = copyJson(subject);
    const cancellation = new HookCancellation(hook, token);
    const pluginContext: PluginContext = cancellation.addSignalTo<HookContext>(context);
    try {
      // The host sends each hook the kind of object its point is about (checked on the host side).
      const method = plugin[hook] as unknown as (s: Entity | Group, r: typeof request, c: PluginContext) => Entity | Group | Promise<Entity | Group>;
      const result: unknown = await method.call(plugin, subject, request, pluginContext);
      const problem = returnedProblem(hook, result);
      if (problem) throw new Error(problem);
      return jsonEqual(result, sent) ? { state: pluginContext.state } : { subject: result as Entity | Group, state: pluginContext.state };
    } catch (err) {
      if (isVeto(err)) throw new ResponseError(PluginErrorCodes.Veto, messageOf(err));
      // After a cancellation nobody waits for the answer: a hook ending on the aborted signal is no failure to log.
      if (!token.isCancellationRequested) plugin.logger.error({ err, hook }, `${hook} failed`);
      throw new ResponseError(ErrorCodes.InternalError, messageOf(err));
    } finally {
      cancellation.dispose();
    }
  });

  connection.onRequest(CommittedRequest, async ({ hook, event, attempt }, token): Promise<null> => {
    if (!hooks.has(hook)) throw new ResponseError(PluginErrorCodes.UnknownHook, `this plugin does not implement ${hook}`);
    const cancellation = new HookCancellation(hook, token);
    const context: DeliveryContext = cancellation.addSignalTo({ attempt });
    try {
      // The host sends each committed hook the events of its own point.
      const method = plugin[hook] as unknown as (e: CommittedEvent, c: DeliveryContext) => void | Promise<void>;
      await method.call(plugin, event, context);
      return null;
    } catch (err) {
      // Not a veto whatever it is: the change is committed; the host delivers the event again later.
      if (!token.isCancellationRequested) plugin.logger.error({ err, hook, seq: event.seq }, `${hook} failed`);
      throw new ResponseError(ErrorCodes.InternalError, messageOf(err));
    } finally {
      cancellation.dispose();
    }
  });

  connection.onRequest(PingRequest, () => null);
  // The host closes stdin right after this answer; the exit follows from that.
  connection.onRequest(ShutdownRequest, () => null);
  // stdin closed: the host stopped us, or died (even by SIGKILL). Either way there is no one left to serve.
  connection.onClose(() => exitWithGroup(0));
  // The host's stream cannot be read any further (a broken host): stop, saying why.
  connection.onError(([err]) => {
    if (!(err instanceof FramingError)) return;
    process.stderr.write(`keyhold plugin: stopping: the host ${err.message}\n`);
    exitWithGroup(1);
  });

  routeLogsToHost((record) => void connection.sendNotification(LogNotification, record));
  connection.listen();
}
