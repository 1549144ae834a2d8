// The wire's framing (docs/protocol.md section 2), with no other dependency: both ends use it, the
// plugin side alone (serve) and the host under vscode-jsonrpc (src/host/wire.ts).
// - Writing: a message is serialised once into one string, header and body together, and written
//   at once; the stream keeps the order (vscode-jsonrpc's own writer makes two writes per message
//   and awaits each).
// - Reading: frames are cut from the chunks and parsed as they arrive, and a byte that breaks the
//   framing is reported at once (vscode-jsonrpc's reader parses each body in a later turn behind
//   an async lock, and waits forever for the rest of bytes that are no frame at all).
import { MAX_MESSAGE_BYTES } from './protocol.js';

/** One frame: the Content-Length header and `body`, a JSON-RPC message's JSON. */
export function frame(body: string): string {
  return `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
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

/**
 * Cuts the messages out of a byte stream fed to it chunk by chunk, however the chunks split it.
 * Each message is handed to `onMessage` as it is complete (parsed JSON, not yet checked to be a
 * JSON-RPC message); at the first bad byte `onBroken` gets a FramingError and nothing more is read.
 */
export class FrameParser {
  /** Bytes received and not yet consumed: a frame still arriving. */
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** The body length of the frame whose header was read, or -1 while a header is awaited. */
  private bodyLength = -1;
  private stopped = false;

  constructor(
    private readonly onMessage: (message: unknown) => void,
    private readonly onBroken: (err: FramingError) => void,
    private readonly maxBodyBytes = MAX_MESSAGE_BYTES,
  ) {}

  /** Reads nothing more (the stream is done with, or broken). */
  stop(): void {
    this.stopped = true;
    this.chunks = [];
  }

  push(chunk: Buffer): void {
    if (this.stopped) return;
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
        if (length === undefined)
          return this.broken(`sent a message without a Content-Length header: ${JSON.stringify(header.slice(0, 80))}`);
        this.bodyLength = Number(length);
        if (this.bodyLength > this.maxBodyBytes)
          return this.broken(`sent a message of ${this.bodyLength} bytes, over the ${this.maxBodyBytes}-byte limit`);
        at = end + HEADER_END.length;
      }
      if (data.length - at < this.bodyLength) break;
      const body = data.toString('utf8', at, at + this.bodyLength);
      at += this.bodyLength;
      this.bodyLength = -1;
      let message: unknown;
      try {
        message = JSON.parse(body);
      } catch (err) {
        return this.broken(`sent a message that is not JSON (${(err as Error).message}): ${JSON.stringify(body.slice(0, 80))}`);
      }
      this.onMessage(message);
    }
    if (this.stopped) return;
    this.chunks = at < data.length ? [data.subarray(at)] : [];
    this.buffered = data.length - at;
  }

  private broken(reason: string): void {
    this.stop();
    this.onBroken(new FramingError(reason));
  }
}
