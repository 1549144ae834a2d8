// The message writer both ends of the wire use instead of vscode-jsonrpc's stream writer, which
// writes a message's header and body as two writes and waits for each to complete before the next
// message may start: two syscalls and a full write round per message. Here a message is
// serialised once into one buffer, header and body together, and handed to the stream at once;
// the stream keeps the order, so messages no longer queue behind each other's completion.
import type { Writable } from 'node:stream';
import { AbstractMessageWriter, type Message, type MessageWriter } from 'vscode-jsonrpc';

export class FramedMessageWriter extends AbstractMessageWriter implements MessageWriter {
  private errorCount = 0;

  constructor(private readonly stream: Writable) {
    super();
    stream.on('error', (err) => this.fireError(err));
    stream.on('close', () => this.fireClose());
  }

  write(msg: Message): Promise<void> {
    const body = JSON.stringify(msg);
    const frame = Buffer.from(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    return new Promise((resolve, reject) => {
      this.stream.write(frame, (err) => {
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
