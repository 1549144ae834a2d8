// The host's JSON-RPC connection to a plugin: vscode-jsonrpc's connection over the SDK's framing
// (keyhold-plugin-sdk's frames.ts: one write per message, frames parsed as they arrive, bad bytes
// reported at once) and a dispatch path of our own. It serves the handshake, pings, shutdown, the
// plugin's logs and anything else a plugin in any language may send; hook calls and their answers
// take a lane of their own beside it (hook-calls.ts), which sees every message first.
// - Dispatch: the connection queues every message it is given and handles one per event-loop turn
//   (setImmediate). On a busy wire that turn, not the work, was most of a message's cost, so once
//   the queue is empty the reader hands messages straight to the connection's handler (QueueBypass).
import type { Readable, Writable } from 'node:stream';
import { frame, FrameParser, MAX_MESSAGE_BYTES } from 'keyhold-plugin-sdk';
import {
  AbstractMessageReader,
  AbstractMessageWriter,
  createMessageConnection,
  type DataCallback,
  type Disposable,
  type Message,
  type MessageConnection,
  type MessageReader,
  type MessageStrategy,
  type MessageWriter,
} from 'vscode-jsonrpc/node';

/** Sees each message read before the connection does; returns true for one it has taken. */
export type Intercept = (message: Message) => boolean;

/** The connection the host speaks over: `input` carries the plugin's messages, `output` the host's. */
export function createWireConnection(input: Readable, output: Writable, intercept?: Intercept): MessageConnection {
  const bypass = new QueueBypass();
  return createMessageConnection(
    new FramedMessageReader(input, MAX_MESSAGE_BYTES, bypass, intercept),
    new FramedMessageWriter(output),
    undefined,
    { messageStrategy: bypass },
  );
}

type Handle = Parameters<MessageStrategy['handleMessage']>[1];

function isCancel(message: Message): boolean {
  return (message as { method?: unknown }).method === '$/cancelRequest';
}

/**
 * Lets the reader hand a message straight to the connection's handler instead of its queue. As
 * the connection's MessageStrategy it is given that handler with the first message the connection
 * dispatches; from then on, whenever no message waits in the queue (so the order is kept), the
 * reader calls it in the turn the message arrives. `$/cancelRequest` always takes the connection's
 * own entry: that is where a running request is cancelled.
 */
export class QueueBypass implements MessageStrategy {
  private handle: Handle | undefined;
  /** Messages given to the connection's queue and not yet dispatched from it. */
  private queued = 0;

  handleMessage(message: Message, next: Handle): ReturnType<Handle> {
    this.handle = next;
    if (!isCancel(message)) this.queued--;
    return next(message);
  }

  /** Delivers one message read: to the handler directly when it may, else to the connection. */
  deliver(message: Message, enqueue: DataCallback, onError: (err: Error) => void): void {
    if (isCancel(message)) return enqueue(message);
    if (this.handle === undefined || this.queued > 0) {
      this.queued++;
      return enqueue(message);
    }
    // Handling errors are answered to the peer inside the handler; a rejection here is a fault of the connection itself.
    void Promise.resolve(this.handle(message)).catch(onError);
  }
}

/** vscode-jsonrpc's writer over frame(): one write per message, which the stream keeps in order. */
export class FramedMessageWriter extends AbstractMessageWriter implements MessageWriter {
  private errorCount = 0;

  constructor(private readonly stream: Writable) {
    super();
    stream.on('error', (err) => this.fireError(err));
    stream.on('close', () => this.fireClose());
  }

  write(msg: Message): Promise<void> {
    return new Promise((resolve, reject) => {
      this.stream.write(frame(JSON.stringify(msg)), 'utf8', (err) => {
        if (!err) return resolve();
        this.fireError(err, msg, ++this.errorCount);
        reject(err);
      });
    });
  }

  end(): void {
    this.stream.end();
  }
}

/** vscode-jsonrpc's reader over FrameParser; a broken framing is reported as a FramingError through onError. */
export class FramedMessageReader extends AbstractMessageReader implements MessageReader {
  private readonly detach: (() => void)[] = [];
  private parser: FrameParser | undefined;

  constructor(
    private readonly stream: Readable,
    private readonly maxBodyBytes = MAX_MESSAGE_BYTES,
    private readonly bypass?: QueueBypass,
    private readonly intercept?: Intercept,
  ) {
    super();
  }

  listen(callback: DataCallback): Disposable {
    const onError = (err: Error) => this.fireError(err);
    const parser = (this.parser = new FrameParser(
      (message) => this.deliver(message as Message, callback),
      (err) => {
        this.stop();
        onError(err);
      },
      this.maxBodyBytes,
    ));
    const onData = (chunk: Buffer) => parser.push(chunk);
    const onClose = () => this.fireClose();
    this.stream.on('data', onData).on('error', onError).on('close', onClose);
    this.detach.push(() => this.stream.off('data', onData).off('error', onError).off('close', onClose));
    return { dispose: () => this.stop() };
  }

  override dispose(): void {
    this.stop();
    super.dispose();
  }

  private deliver(message: Message, callback: DataCallback): void {
    if (this.intercept?.(message)) return;
    if (this.bypass) this.bypass.deliver(message, callback, (err) => this.fireError(err));
    else callback(message);
  }

  private stop(): void {
    this.parser?.stop();
    for (const detach of this.detach.splice(0)) detach();
  }
}
