// The JSON-RPC connection to one plugin process: handshake, hook calls with a timeout and
// `$/cancelRequest` (on their own lane, hook-calls.ts), and the plugin's logs. When the process
// exits or its stream breaks, every call in flight fails at once, not at its timeout.
import type { Readable } from 'node:stream';
import {
  FramingError,
  isPluginHookName,
  parseClaimRule,
  VERIFY_MODES,
  type ActionParams,
  type VerifyParams,
  type VerifyResult,
  PluginErrorCodes,
  type CommittedParams,
  type HookParams,
  type HookResult,
  type InitializeParams,
  type InitializeResult,
  type JsonObject,
  type LogLevel,
} from 'keyhold-plugin-sdk';
import { pino, type Logger } from 'pino';
import { CancellationTokenSource, ErrorCodes, ResponseError, type CancellationToken, type MessageConnection } from 'vscode-jsonrpc/node';
import { PluginCallError } from '../lifecycle/dispatcher.js';
import { answerError, HookCalls } from './hook-calls.js';
import { settlesWithin, stopProcess, type ExitInfo, type PluginProcess } from './process.js';
import {
  ActionRequest,
  CommittedRequest,
  InitializeRequest,
  LogNotification,
  PingRequest,
  SelfCheckRequest,
  ShutdownRequest,
  VerifyRequest,
} from './requests.js';
import { readLines } from './stderr-lines.js';
import type { PluginStateHost } from './plugin-state.js';
import { createWireConnection } from './wire.js';

/** Stderr lines longer than this are cut (and the record says `truncated: true`): one runaway line must not fill the host's memory or log. */
const MAX_LINE_CHARS = 8 * 1024;
/** Stderr lines kept (the first and the last ones) to explain a plugin that dies during start: a stack trace says what at its head. */
const KEPT_LINES = 5;

export function describeExit(info: ExitInfo): string {
  if (info.spawnError !== undefined) return `could not be started: ${info.spawnError}`;
  if (info.signal !== null) return `was killed by ${info.signal}`;
  return `exited with code ${info.code}`;
}

const LEVELS = new Set<string>(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);

function levelOf(value: unknown): LogLevel | undefined {
  const label = typeof value === 'number' ? pino.levels.labels[value] : value;
  return typeof label === 'string' && LEVELS.has(label) ? (label as LogLevel) : undefined;
}

/** What is wrong with the verify and action declarations of a handshake's result, if anything. */
function declarationProblem({ verify, actions }: InitializeResult): string | undefined {
  if (actions !== undefined && (!Array.isArray(actions) || actions.some((a) => typeof a !== 'string' || a === '')))
    return `the plugin declared actions that are not a list of names: ${JSON.stringify(actions)}`;
  if (verify === undefined) return undefined;
  const { claims, modes } = verify;
  if (!Array.isArray(modes) || modes.length === 0 || modes.some((m) => !VERIFY_MODES.includes(m)))
    return `the plugin declared verify modes keyhold does not have: ${JSON.stringify(modes)} (expected some of ${VERIFY_MODES.join(', ')})`;
  if (!Array.isArray(claims) || claims.length === 0) return `the plugin declared verify with no claim rules: ${JSON.stringify(claims)}`;
  for (const claim of claims) {
    try {
      parseClaimRule(String(claim));
    } catch (err) {
      return `the plugin declared a bad claim rule: ${(err as Error).message}`;
    }
  }
  return undefined;
}

export interface ClientOptions {
  /** The name the host knows the plugin by. */
  name: string;
  logger: Logger;
  /** Serves the plugin's state requests in its namespace; without it the host offers no state. */
  state?: PluginStateHost | undefined;
}

export class PluginClient {
  readonly pid: number | undefined;
  /** Resolves with why the connection ended: the process exited or its stream broke. */
  readonly closed: Promise<string>;
  private readonly connection: MessageConnection;
  private readonly hookCalls: HookCalls;
  private readonly log: Logger;
  /** Requests other than hook calls in flight, each with the function that fails it. */
  private readonly inFlight = new Map<Promise<unknown>, (err: PluginCallError) => void>();
  private readonly stderrHead: string[] = [];
  private readonly stderrTail: string[] = [];
  private stderrSkipped = 0;
  private readonly stderrDone: Promise<void>;
  private closedReason: string | undefined;
  /** Set by stop(): the process is expected to exit now, not killed for it. */
  private stopping = false;
  private markClosed!: (reason: string) => void;

  constructor(
    private readonly proc: PluginProcess,
    options: ClientOptions,
  ) {
    this.pid = proc.pid;
    this.log = options.logger.child({ plugin: options.name, pid: proc.pid });
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
    this.stderrDone = this.forwardStderr(proc.stderr);
    // Write errors surface as the stream's error event (below), as for the connection's own writes.
    this.hookCalls = new HookCalls((data) => void proc.stdin.write(data));
    this.connection = createWireConnection(proc.stdout, proc.stdin, (message) => this.hookCalls.receive(message));
    this.connection.onNotification(LogNotification, ({ level, msg, fields }) => this.logRecord(level, msg, fields ?? {}));
    options.state?.serve(this.connection, options.name);
    // Bad framing is reported at the first bad byte: the rest of the stream cannot be read.
    this.connection.onError(([err]) =>
      err instanceof FramingError ? this.breakConnection(err.message) : this.streamFailed(`broke the JSON-RPC stream: ${err.message}`),
    );
    this.connection.onClose(() => this.streamFailed('closed its stdout but kept running'));
    proc.stdin.on('error', (err) => this.streamFailed(`stopped reading its stdin: ${err.message}`));
    void proc.exited.then((info) => this.close(`the plugin ${describeExit(info)}`));
    this.connection.listen();
  }

  /** The handshake. Rejects with an Error whose message says exactly why the plugin cannot be loaded. */
  async initialize(params: InitializeParams, timeoutMs: number): Promise<InitializeResult> {
    let result: InitializeResult;
    try {
      result = await this.request((token) => this.connection.sendRequest(InitializeRequest, params, token), timeoutMs);
    } catch (err) {
      throw new Error(await this.initializeFailure(err, timeoutMs));
    }
    if (!params.protocolVersions.includes(result?.protocolVersion)) {
      throw new Error(
        `protocol mismatch: the plugin chose protocol version ${result?.protocolVersion}, the host speaks ${params.protocolVersions.join(', ')}`,
      );
    }
    const unknown = Array.isArray(result.hooks) ? result.hooks.filter((h) => !isPluginHookName(h)) : ['(hooks is not a list)'];
    if (unknown.length > 0) throw new Error(`the plugin reported hooks keyhold does not have: ${unknown.join(', ')}`);
    const problem = declarationProblem(result);
    if (problem !== undefined) throw new Error(problem);
    return result;
  }

  private async initializeFailure(err: unknown, timeoutMs: number): Promise<string> {
    if (err instanceof ResponseError) {
      if (err.code === PluginErrorCodes.UnsupportedProtocol) return `protocol mismatch: ${err.message}`;
      if (err.code === PluginErrorCodes.ConfigRejected) return `config rejected: ${err.message}`;
      return `answered initialize with an error: ${err.message}`;
    }
    if (err instanceof PluginCallError && err.kind === 'timeout')
      return `did not complete the handshake within ${timeoutMs} ms (start timeout)`;
    if (this.closedReason === undefined) return `failed the handshake: ${(err as Error).message}`;
    // Let the stderr lines arrive: they usually say why it died.
    await settlesWithin(this.stderrDone, 1000);
    const lines = [...this.stderrHead, ...(this.stderrSkipped > 0 ? [`(${this.stderrSkipped} more)`] : []), ...this.stderrTail];
    const stderr = lines.length > 0 ? `; its stderr: ${lines.map((l) => l.trim()).join(' | ')}` : '';
    return `${this.closedReason} before completing the handshake (is it a keyhold plugin? it must answer initialize when started with the cookie)${stderr}`;
  }

  /** One hook call. Rejects with PluginCallError: veto, timeout or crash. */
  call(params: HookParams, timeoutMs: number): Promise<HookResult> {
    if (this.stopping) return Promise.reject(new PluginCallError('unavailable', 'the plugin is being stopped'));
    if (this.closedReason !== undefined) return Promise.reject(new PluginCallError('crash', this.closedReason));
    return this.hookCalls.call(params, timeoutMs);
  }

  /** One committed event delivery. Rejects with PluginCallError: an error answer (crash), a timeout or a dead process. */
  committed(params: CommittedParams, timeoutMs: number): Promise<void> {
    return this.plainCall((token) => this.connection.sendRequest(CommittedRequest, params, token), timeoutMs).then(() => undefined);
  }

  /** A request other than a hook call, every failure as a PluginCallError (an error answer: veto or crash). */
  private plainCall<R>(send: (token: CancellationToken) => Promise<R>, timeoutMs: number): Promise<R> {
    if (this.stopping) return Promise.reject(new PluginCallError('unavailable', 'the plugin is being stopped'));
    return this.request(send, timeoutMs).catch((err: unknown) => {
      throw err instanceof PluginCallError ? err : answerError(err);
    });
  }

  /** One verify call. Rejects with PluginCallError: an error answer (crash), a timeout or a dead process. */
  verify(params: VerifyParams, timeoutMs: number): Promise<VerifyResult> {
    return this.plainCall((token) => this.connection.sendRequest(VerifyRequest, params, token), timeoutMs);
  }

  /** One admin action. Rejects with PluginCallError: a veto (the plugin refused), a crash, a timeout. */
  action(params: ActionParams, timeoutMs: number): Promise<JsonObject> {
    return this.plainCall((token) => this.connection.sendRequest(ActionRequest, params, token), timeoutMs);
  }

  /** The plugin's own checks (`keyhold plugin verify`): resolves with false when it has none, rejects with its reason when they fail. */
  async selfCheck(timeoutMs: number): Promise<boolean> {
    try {
      await this.request((token) => this.connection.sendRequest(SelfCheckRequest, token), timeoutMs);
      return true;
    } catch (err) {
      if (err instanceof ResponseError && err.code === ErrorCodes.MethodNotFound) return false;
      throw new Error((err as Error).message);
    }
  }

  ping(timeoutMs: number): Promise<unknown> {
    return this.request((token) => this.connection.sendRequest(PingRequest, token), timeoutMs);
  }

  /** Waits for the calls in flight (also those made meanwhile), then shutdown, close stdin, grace, SIGTERM, grace, SIGKILL. */
  async stop(graceMs: number): Promise<ExitInfo> {
    // Bounded: every call has a timeout.
    while (this.inFlight.size > 0 || this.hookCalls.size > 0) await Promise.allSettled([...this.inFlight.keys(), this.hookCalls.idle()]);
    this.stopping = true;
    return stopProcess(this.proc, graceMs, async () => {
      if (this.closedReason === undefined) await this.request((token) => this.connection.sendRequest(ShutdownRequest, token), graceMs);
      this.proc.stdin.end();
    });
  }

  /** Resolves once the process is gone. */
  get exited(): Promise<ExitInfo> {
    return this.proc.exited;
  }

  /** Kills the process at once (a hang or a broken stream: nothing polite would be heard). */
  kill(): void {
    this.proc.kill('SIGKILL');
  }

  /** Sends one request; rejects with PluginCallError (timeout, crash) or the plugin's ResponseError. */
  private request<R>(send: (token: CancellationToken) => Promise<R>, timeoutMs: number): Promise<R> {
    if (this.closedReason !== undefined) return Promise.reject(new PluginCallError('crash', this.closedReason));
    const cancel = new CancellationTokenSource();
    let timer: NodeJS.Timeout | undefined;
    let fail!: (err: PluginCallError) => void;
    const call = new Promise<R>((resolve, reject) => {
      fail = reject;
      // Cancelling sends `$/cancelRequest`; the plugin's late answer, if any, is dropped.
      timer = setTimeout(() => {
        cancel.cancel();
        reject(new PluginCallError('timeout', `no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      send(cancel.token).then(resolve, (err: unknown) => {
        // Not an answer: the request could not be written (the process is going away). close() or the timer settles the call.
        if (err instanceof ResponseError && err.code === ErrorCodes.MessageWriteError)
          this.streamFailed(`could not be written to: ${err.message}`);
        else reject(err);
      });
    }).finally(() => {
      clearTimeout(timer);
      cancel.dispose();
      this.inFlight.delete(call);
    });
    this.inFlight.set(call, fail);
    return call;
  }

  /**
   * A stream ended or failed. Usually the process is exiting (stdout closes, or a write meets
   * EPIPE, just before the exit is reported): give the exit a moment so the reason names the
   * exit code; a process still alive after that is broken and killed.
   */
  private streamFailed(reason: string): void {
    void settlesWithin(this.proc.exited, 200).then((exited) => exited || this.breakConnection(reason));
  }

  private breakConnection(reason: string): void {
    if (this.closedReason !== undefined || this.stopping) return;
    this.close(`the plugin ${reason}`);
    this.kill();
  }

  private close(reason: string): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    const failure = new PluginCallError('crash', reason);
    this.hookCalls.failAll(failure);
    for (const fail of this.inFlight.values()) fail(failure);
    this.connection.dispose();
    this.markClosed(reason);
  }

  private logRecord(level: unknown, msg: unknown, fields: JsonObject): void {
    // The host's own fields win: a plugin cannot log as another plugin.
    const { plugin: _plugin, pid: _pid, ...rest } = fields;
    this.log[levelOf(level) ?? 'info'](rest, typeof msg === 'string' ? msg : '');
  }

  /** Stderr lines become log records: JSON lines (e.g. pino output) keep their level and fields, others are logged as text; a cut line says so. */
  private forwardStderr(stderr: Readable): Promise<void> {
    return readLines(stderr, MAX_LINE_CHARS, (text, truncated) => {
      const line = truncated ? text : text.trimEnd();
      if (line === '') return;
      if (this.stderrHead.length < KEPT_LINES) this.stderrHead.push(line);
      else if (this.stderrTail.push(line) > KEPT_LINES) {
        this.stderrTail.shift();
        this.stderrSkipped++;
      }
      const marks = { stream: 'stderr', ...(truncated && { truncated: true }) };
      if (!truncated && line.startsWith('{')) {
        try {
          const { level, msg, time: _time, hostname: _hostname, ...fields } = JSON.parse(line) as JsonObject;
          return this.logRecord(level, msg, { ...fields, ...marks });
        } catch {
          // Not JSON after all: logged as text below.
        }
      }
      // Plain text on stderr is what a plugin says when something is off (a stack, a missing
      // module): warn, so it shows at the default level; routine output belongs in $/log records.
      this.log.warn(marks, line);
    });
  }
}
