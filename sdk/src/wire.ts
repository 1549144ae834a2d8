// The framing both ends of the wire use instead of vscode-jsonrpc's stream reader and writer
// (docs/protocol.md section 2; docs/performance.md says what each change saved).
// - Writer: a message is serialised once into one string, header and body together, and handed to
//   the stream at once; the stream keeps the order, so messages do not wait for each other's
//   completion (the stock writer makes two writes per message and awaits each).
// - Reader: frames are cut from the chunks and parsed as they arrive, and each message goes to
//   the connection at once. The stock reader parses each body in a later turn of the event loop,
//   behind an async lock, which adds a turn per message on each side; it also cannot tell bytes
//   that are no frame at all from a frame still arriving, and waits forever for the rest.
import type { Readable, Writable } from 'node:stream';
import { AbstractMessageReader, AbstractMessageWriter, type DataCallback, type Disposable, type Message, type MessageReader, type MessageWriter } from 'vscode-jsonrpc';
import { MAX_MESSAGE_BYTES } from './protocol.js';

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
      callback(message);
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
