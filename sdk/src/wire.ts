// The wire both ends use: vscode-jsonrpc's connection over a framing and a dispatch path of our
// own (docs/protocol.md section 2; docs/performance.md says what each part saved).
// - Writer: a message is serialised once into one string, header and body together, and handed
//   to the stream at once; the stream keeps the order, so messages do not wait for each other's
//   completion (the stock writer makes two writes per message and awaits each).
// - Reader: frames are cut from the chunks and parsed as they arrive. The stock reader parses each
//   body in a later event-loop turn behind an async lock; it also cannot tell bytes that are no
//   frame at all from a frame still arriving, and waits forever for the rest.
// - Dispatch: the connection queues every message it is given and handles one per event-loop turn
//   (setImmediate). On a busy wire that turn, not the work, was most of a call's cost, so once the
//   queue is empty the reader hands messages straight to the connection's handler (QueueBypass).
import type { Readable, Writable } from 'node:stream';
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
} from './jsonrpc.js';
import { MAX_MESSAGE_BYTES } from './protocol.js';

/** The connection both ends speak over: `input` carries the peer's messages, `output` ours. */
export function createWireConnection(input: Readable, output: Writable): MessageConnection {
  const bypass = new QueueBypass();
  return createMessageConnection(new FramedMessageReader(input, MAX_MESSAGE_BYTES, bypass), new FramedMessageWriter(output), undefined, { messageStrategy: bypass });
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

export class FramedMessageWriter extends AbstractMessageWriter implements MessageWriter {
  private errorCount = 0;

  constructor(private readonly stream: Writable) {
    super();
    stream.on('error', (err) => this.fireError(err));
    stream.on('close', () => this.fireClose());
  }

  write(msg: Message): Promise<void> {
    const body = JSON.stringify(msg);
    return new Promise((resolve, reject) => {
      this.stream.write(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, 'utf8', (err) => {
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

/**
 * The peer broke the framing: the rest of its stream cannot be read. The message says what was
 * sent, as the end of a sentence about the peer ("the plugin " + message).
 */
export class FramingError extends Error {
  override name = 'FramingError';
}

/** A header block longer than this is no header (docs/protocol.md: keep it under 1 KiB). */
const MAX_HEADER_BYTES = 1024;
const HEADER_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /(?:^|\r\n)content-length: *(\d+) *(?:\r\n|$)/i;

export class FramedMessageReader extends AbstractMessageReader implements MessageReader {
  /** Bytes received and not yet consumed: a frame still arriving. */
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** The body length of the frame whose header was read, or -1 while a header is awaited. */
  private bodyLength = -1;
  private stopped = false;
  private readonly detach: (() => void)[] = [];

  constructor(
    private readonly stream: Readable,
    private readonly maxBodyBytes = MAX_MESSAGE_BYTES,
    private readonly bypass?: QueueBypass,
  ) {
    super();
  }

  listen(callback: DataCallback): Disposable {
    const onData = (chunk: Buffer) => this.receive(chunk, callback);
    const onError = (err: Error) => this.fireError(err);
    const onClose = () => this.fireClose();
    this.stream.on('data', onData).on('error', onError).on('close', onClose);
    this.detach.push(() => this.stream.off('data', onData).off('error', onError).off('close', onClose));
    return { dispose: () => this.stop() };
  }

  override dispose(): void {
    this.stop();
    super.dispose();
  }

  private stop(): void {
    this.stopped = true;
    for (const detach of this.detach.splice(0)) detach();
    this.chunks = [];
  }

  private receive(chunk: Buffer, callback: DataCallback): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    // A body arriving in many chunks is joined once, when it is complete.
    if (this.bodyLength >= 0 && this.buffered < this.bodyLength) return;
    const data = this.chunks.length === 1 ? chunk : Buffer.concat(this.chunks, this.buffered);
    let at = 0;
    while (!this.stopped) {
      if (this.bodyLength < 0) {
        const end = data.indexOf(HEADER_END, at);
        const header = data.toString('latin1', at, end < 0 ? Math.min(data.length, at + MAX_HEADER_BYTES) : end);
        if (end < 0) {
          if (!'content-'.startsWith(header.slice(0, 8).toLowerCase()) || header.length >= MAX_HEADER_BYTES) {
            return this.broken(`wrote bytes that are not a JSON-RPC message: ${JSON.stringify(header.slice(0, 80))}`);
          }
          break;
        }
        const length = CONTENT_LENGTH.exec(header)?.[1];
        if (length === undefined) return this.broken(`sent a message without a Content-Length header: ${JSON.stringify(header.slice(0, 80))}`);
        this.bodyLength = Number(length);
        if (this.bodyLength > this.maxBodyBytes) return this.broken(`sent a message of ${this.bodyLength} bytes, over the ${this.maxBodyBytes}-byte limit`);
        at = end + HEADER_END.length;
      }
      if (data.length - at < this.bodyLength) break;
      const body = data.toString('utf8', at, at + this.bodyLength);
      at += this.bodyLength;
      this.bodyLength = -1;
      let message: Message;
      try {
        message = JSON.parse(body) as Message;
      } catch (err) {
        return this.broken(`sent a message that is not JSON (${(err as Error).message}): ${JSON.stringify(body.slice(0, 80))}`);
      }
      if (this.bypass) this.bypass.deliver(message, callback, (err) => this.fireError(err));
      else callback(message);
    }
    if (this.stopped) return;
    this.chunks = at < data.length ? [data.subarray(at)] : [];
    this.buffered = data.length - at;
  }

  private broken(reason: string): void {
    this.stop();
    this.fireError(new FramingError(reason));
  }
}
