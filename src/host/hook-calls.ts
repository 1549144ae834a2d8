// Hook calls to one plugin, on a lane of their own beside the vscode-jsonrpc connection (wire.ts):
// each request is written as one frame, its answer is taken off the wire by its id before the
// connection sees it, and timeouts are one sweep over the calls in flight, instead of a timer, a
// cancellation token and vscode-jsonrpc's bookkeeping per call (docs/performance.md). On the wire
// nothing changes (docs/protocol.md sections 5 and 7): the ids are negative, so that they never
// meet the connection's own, which count up from 0.
import { performance } from 'node:perf_hooks';
import { frame, PluginErrorCodes, type HookParams, type HookResult } from 'keyhold-plugin-sdk';
import { PluginCallError } from '../lifecycle/dispatcher.js';

interface Pending {
  resolve(result: HookResult): void;
  reject(err: PluginCallError): void;
  /** The performance.now() after which the call has timed out. */
  deadline: number;
  timeoutMs: number;
}

/** A message read from the plugin, as far as an answer is concerned. */
interface Answer {
  id?: unknown;
  method?: unknown;
  result?: unknown;
  error?: unknown;
}

/** Ids stay 32-bit integers, which some JSON-RPC libraries a plugin may use require. */
const LOWEST_ID = -0x80000000;

/** A JSON-RPC error answer (or vscode-jsonrpc's ResponseError, which has the same code and message) as a PluginCallError: a veto or a crash. */
export function answerError(error: unknown): PluginCallError {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return new PluginCallError(
    code === PluginErrorCodes.Veto ? 'veto' : 'crash',
    typeof message === 'string' ? message : `answered with an error that has no message: ${JSON.stringify(error)}`,
  );
}

export class HookCalls {
  private readonly pending = new Map<number, Pending>();
  private lastId = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** When the armed sweep runs (performance.now() time), or Infinity when none is armed. */
  private sweepAt = Infinity;
  private idleWaiters: (() => void)[] = [];

  /** `write` sends one frame to the plugin. */
  constructor(private readonly write: (data: string) => void) {}

  /** Calls in flight. */
  get size(): number {
    return this.pending.size;
  }

  /** Sends one hook call; settles with the plugin's result, or rejects with PluginCallError (veto, timeout, crash). */
  call(params: HookParams, timeoutMs: number): Promise<HookResult> {
    const id = this.nextId();
    const deadline = performance.now() + timeoutMs;
    const answered = new Promise<HookResult>((resolve, reject) => this.pending.set(id, { resolve, reject, deadline, timeoutMs }));
    if (deadline < this.sweepAt) this.armSweep(deadline);
    this.write(frame(`{"jsonrpc":"2.0","id":${id},"method":"hook","params":${JSON.stringify(params)}}`));
    return answered;
  }

  /** Takes `message` when it answers a hook call (one in flight, or a late one, which is dropped); false for any other message. */
  receive(message: object): boolean {
    const { id, method, error, result } = message as Answer;
    if (typeof id !== 'number' || id >= 0 || method !== undefined) return false;
    const call = this.pending.get(id);
    if (call === undefined) return true;
    this.settled(id);
    if (error === undefined) call.resolve(result as HookResult);
    else call.reject(answerError(error));
    return true;
  }

  /** Fails every call in flight with `err` (the plugin is gone). */
  failAll(err: PluginCallError): void {
    clearTimeout(this.sweepTimer);
    this.sweepAt = Infinity;
    const calls = [...this.pending.values()];
    this.pending.clear();
    for (const call of calls) call.reject(err);
    this.wakeIdle();
  }

  /** Resolves once no call is in flight (at once when none is). */
  idle(): Promise<void> {
    return this.pending.size === 0 ? Promise.resolve() : new Promise((wake) => this.idleWaiters.push(wake));
  }

  private nextId(): number {
    do this.lastId = this.lastId <= LOWEST_ID ? -1 : this.lastId - 1;
    while (this.pending.has(this.lastId));
    return this.lastId;
  }

  private settled(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0 && this.idleWaiters.length > 0) this.wakeIdle();
  }

  private wakeIdle(): void {
    for (const wake of this.idleWaiters.splice(0)) wake();
  }

  /** One timer for all calls, armed for the earliest deadline. */
  private armSweep(at: number): void {
    clearTimeout(this.sweepTimer);
    this.sweepAt = at;
    this.sweepTimer = setTimeout(() => this.sweep(), Math.max(1, Math.ceil(at - performance.now())));
  }

  private sweep(): void {
    this.sweepTimer = undefined;
    this.sweepAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [id, call] of this.pending) {
      if (call.deadline > now) {
        next = Math.min(next, call.deadline);
        continue;
      }
      this.settled(id);
      // Cancelling tells the plugin it may stop working on the call; its late answer, if any, is dropped.
      this.write(frame(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":${id}}}`));
      call.reject(new PluginCallError('timeout', `no answer within ${call.timeoutMs} ms`));
    }
    if (next < Infinity) this.armSweep(next);
  }
}
