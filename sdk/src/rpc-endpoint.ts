// The plugin's end of the JSON-RPC connection (docs/protocol.md section 3): each request from the
// host goes to the handler of its method and is answered by its id, `$/cancelRequest` cancels one
// that is running, notifications go out as frames, and the plugin's own requests (state/…) go
// out numbered 0, 1, … and are settled by the host's answers. Written for the few methods a plugin serves,
// instead of vscode-jsonrpc's general connection: loading that library was most of what a plugin's
// start cost beyond a bare node's, and its bookkeeping per request a large share of a hook call's
// time (docs/performance.md). The host keeps vscode-jsonrpc, for whatever any plugin may send.
import type { Readable } from 'node:stream';
import { frame, FrameParser, type FramingError } from './frames.js';

/** JSON-RPC's own error codes, as far as a plugin answers with them. */
export const RpcErrorCodes = {
  MethodNotFound: -32601,
  /** The request's params break the protocol (e.g. an operation not in OPERATIONS). */
  InvalidParams: -32602,
  InternalError: -32603,
} as const;

/** An error a handler throws to answer with this code and message (e.g. PluginErrorCodes.Veto). */
export class RpcError extends Error {
  override name = 'RpcError';

  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** One request being handled: whether the host has cancelled it (`$/cancelRequest`), and who to tell when it does. */
export class RequestCall {
  cancelled = false;
  private listener: (() => void) | undefined;

  /** Calls `listener` when the request is cancelled: at once when it already is. One listener. */
  onCancel(listener: () => void): void {
    if (this.cancelled) listener();
    else this.listener = listener;
  }

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.listener?.();
  }
}

/** Handles one request: returns the result (or a promise of it), or throws (an RpcError to choose the code). */
export type RequestHandler = (params: never, call: RequestCall) => unknown;

type Id = number | string;

interface Incoming {
  id?: unknown;
  method?: unknown;
  params?: unknown;
  result?: unknown;
  error?: { code?: unknown; message?: unknown };
}

/** A request of the plugin's waiting for the host's answer. */
interface Outgoing {
  resolve(result: unknown): void;
  reject(err: RpcError): void;
}

/** Whether a handler's result is a promise (or like one) to wait for. */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function';
}

export class RpcEndpoint {
  private readonly handlers = new Map<string, RequestHandler>();
  /** Requests being handled, by id: what `$/cancelRequest` reaches. */
  private readonly running = new Map<Id, RequestCall>();
  /** The plugin's requests waiting for an answer, by id. */
  private readonly waiting = new Map<number, Outgoing>();
  private lastId = -1;
  private closed = false;
  private readonly parser: FrameParser;

  /**
   * Reads the host's messages from `input` and writes frames with `write`. `onClosed` runs when
   * `input` closes; `onBroken` when the host breaks the framing, after which nothing more is read.
   */
  constructor(
    private readonly input: Readable,
    private readonly write: (data: string) => void,
    private readonly onClosed: () => void,
    onBroken: (err: FramingError) => void,
  ) {
    this.parser = new FrameParser(
      (message) => this.receive(message as Incoming),
      (err) => {
        this.failWaiting(`the host's stream broke: ${err.message}`);
        onBroken(err);
      },
    );
  }

  /** Serves requests for `method` with `handler` (requests for methods without one get MethodNotFound). */
  onRequest<P>(method: string, handler: (params: P, call: RequestCall) => unknown): void {
    this.handlers.set(method, handler as RequestHandler);
  }

  notify(method: string, params: unknown): void {
    this.write(frame(JSON.stringify({ jsonrpc: '2.0', method, params })));
  }

  /** Sends a request to the host; resolves with its result, rejects with an RpcError carrying the host's error code and message. */
  request(method: string, params: unknown): Promise<unknown> {
    if (this.closed) return Promise.reject(new RpcError(RpcErrorCodes.InternalError, `${method}: the connection to the host is closed`));
    this.lastId = this.lastId >= 0x7fffffff ? 0 : this.lastId + 1;
    const id = this.lastId;
    const answered = new Promise<unknown>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    this.write(frame(JSON.stringify({ jsonrpc: '2.0', id, method, params })));
    return answered;
  }

  listen(): void {
    this.input.on('data', (chunk: Buffer) => this.parser.push(chunk));
    // An error on the host's stream ends it: 'close' follows, and with it the plugin.
    this.input.on('error', () => {});
    this.input.on('close', () => {
      this.failWaiting('the host closed the connection');
      this.onClosed();
    });
  }

  private failWaiting(reason: string): void {
    this.closed = true;
    for (const { reject } of this.waiting.values()) reject(new RpcError(RpcErrorCodes.InternalError, reason));
    this.waiting.clear();
  }

  /** The host's answer to one of the plugin's requests. */
  private settle({ id, result, error }: Incoming): void {
    const outgoing = typeof id === 'number' ? this.waiting.get(id) : undefined;
    if (outgoing === undefined) return;
    this.waiting.delete(id as number);
    if (error === undefined) outgoing.resolve(result);
    else
      outgoing.reject(
        new RpcError(
          typeof error?.code === 'number' ? error.code : RpcErrorCodes.InternalError,
          typeof error?.message === 'string' ? error.message : 'the host answered with an error that has no message',
        ),
      );
  }

  private receive(message: Incoming): void {
    if (message === null || typeof message !== 'object') return;
    if (typeof message.method !== 'string') return this.settle(message);
    const { id, method, params } = message;
    if (id === undefined) {
      if (method === '$/cancelRequest') this.running.get((params as { id?: Id } | undefined)?.id as Id)?.cancel();
      return; // other notifications are ignored, as the protocol asks
    }
    if (typeof id !== 'number' && typeof id !== 'string') return;
    const handler = this.handlers.get(method);
    if (handler === undefined) return this.fail(id, method, new RpcError(RpcErrorCodes.MethodNotFound, `Unhandled method ${method}`));
    const call = new RequestCall();
    this.running.set(id, call);
    let result: unknown;
    try {
      result = handler(params as never, call);
    } catch (err) {
      return this.fail(id, method, err);
    }
    // A handler that answers at once is answered in this turn, without a promise.
    if (isThenable(result)) {
      result.then(
        (value) => this.answer(id, method, value),
        (err: unknown) => this.fail(id, method, err),
      );
    } else {
      this.answer(id, method, result);
    }
  }

  private answer(id: Id, method: string, result: unknown): void {
    let json: string;
    try {
      json = JSON.stringify(result === undefined ? null : result);
    } catch (err) {
      return this.fail(id, method, err);
    }
    this.running.delete(id);
    this.write(frame(`{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":${json}}`));
  }

  private fail(id: Id, method: string, err: unknown): void {
    this.running.delete(id);
    const error =
      err instanceof RpcError
        ? { code: err.code, message: err.message }
        : {
            code: RpcErrorCodes.InternalError,
            message: `Request ${method} failed with message: ${err instanceof Error ? err.message : String(err)}`,
          };
    this.write(frame(JSON.stringify({ jsonrpc: '2.0', id, error })));
  }
}
