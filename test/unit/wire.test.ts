// The host's wire (src/host/wire.ts over the SDK's frames.ts): messages out of any split of the
// byte stream, a clear FramingError at the first byte that breaks the framing, and dispatch
// without a turn per message.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { FramingError } from 'keyhold-plugin-sdk';
import { RequestType, type CancellationToken, type Message } from 'vscode-jsonrpc/node';
import { createWireConnection, FramedMessageReader, FramedMessageWriter } from '../../src/host/wire.js';

function frame(body: string): Buffer {
  return Buffer.from(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

interface Read {
  messages: unknown[];
  errors: Error[];
}

/** Feeds `chunks` to a reader one by one and collects what it reports. */
function read(chunks: Buffer[], maxBodyBytes?: number): Read {
  const stream = new PassThrough();
  const reader = new FramedMessageReader(stream, maxBodyBytes);
  const out: Read = { messages: [], errors: [] };
  reader.onError((err) => out.errors.push(err));
  reader.listen((message) => out.messages.push(message));
  for (const chunk of chunks) stream.emit('data', chunk);
  return out;
}

/** `bytes` cut into pieces of `size` bytes. */
function pieces(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, at + size));
  return out;
}

const MESSAGES = [
  { jsonrpc: '2.0', id: 1, method: 'hook', params: { displayName: 'Zoë 🦊 Ünïcode' } },
  { jsonrpc: '2.0', method: '$/log', params: { level: 'info', msg: 'x'.repeat(70_000) } },
  { jsonrpc: '2.0', id: 2, result: null },
];
const STREAM = Buffer.concat(MESSAGES.map((m) => frame(JSON.stringify(m))));

describe('FramedMessageReader', () => {
  it('reads the same messages however the stream is cut (inside headers, bodies and UTF-8 sequences)', () => {
    for (const size of [1, 2, 3, 7, 64, 1000, 65_536, STREAM.length]) {
      const { messages, errors } = read(pieces(STREAM, size));
      assert.deepEqual(errors, [], `cut every ${size} bytes`);
      assert.deepEqual(messages, MESSAGES, `cut every ${size} bytes`);
    }
  });

  it('accepts a Content-Type header and any case of Content-Length', () => {
    const body = JSON.stringify(MESSAGES[2]);
    const bytes = Buffer.from(`content-type: application/vscode-jsonrpc; charset=utf-8\r\nCONTENT-LENGTH: ${body.length}\r\n\r\n${body}`);
    assert.deepEqual(read([bytes]).messages, [MESSAGES[2]]);
  });

  const broken: [string, Buffer[], RegExp][] = [
    [
      'a stray print',
      [frame('{"jsonrpc":"2.0","id":1,"result":null}'), Buffer.from('debug: got here\n')],
      /^wrote bytes that are not a JSON-RPC message: "debug: got here\\n"$/,
    ],
    ['a header without Content-Length', [Buffer.from('Content-Type: x\r\n\r\n{}')], /^sent a message without a Content-Length header/],
    ['a header block over 1 KiB', [Buffer.from(`Content-X: ${'a'.repeat(2000)}`)], /not a JSON-RPC message/],
    ['a body over the limit', [Buffer.from('Content-Length: 101\r\n\r\n')], /^sent a message of 101 bytes, over the 100-byte limit$/],
    ['a body that is not JSON', [frame('{"jsonrpc":')], /^sent a message that is not JSON \(.+\): "\{\\"jsonrpc\\":"$/],
  ];
  for (const [what, chunks, reason] of broken) {
    it(`reports ${what} as a FramingError and reads nothing after it`, () => {
      const { messages, errors } = read([...chunks, frame('{"jsonrpc":"2.0","id":9,"result":null}')], 100);
      assert.equal(errors.length, 1);
      assert.ok(errors[0] instanceof FramingError);
      assert.match(errors[0].message, reason);
      assert.ok(!messages.some((m) => (m as { id?: number }).id === 9), 'no message is read after the break');
    });
  }

  it('waits for a body that is still arriving, without an error', () => {
    const bytes = frame(JSON.stringify(MESSAGES[1]));
    const { messages, errors } = read([bytes.subarray(0, bytes.length - 1)]);
    assert.deepEqual([messages, errors], [[], []]);
  });
});

describe('FramedMessageWriter', () => {
  it('writes frames the reader reads back, one write per message', async () => {
    const stream = new PassThrough();
    const writes: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => writes.push(chunk));
    const writer = new FramedMessageWriter(stream);
    for (const message of MESSAGES) await writer.write(message as Message);
    assert.equal(writes.length, MESSAGES.length);
    assert.deepEqual(Buffer.concat(writes), STREAM);
  });
});

describe('createWireConnection', () => {
  const Echo = new RequestType<{ n: number }, number, void>('echo');

  /** A connection reading `input`, its `echo` handler recording each n it is called with. */
  function server(
    input: PassThrough,
    handled: number[],
    handler: (p: { n: number }, token?: CancellationToken) => Promise<number> = async ({ n }) => n,
  ) {
    const connection = createWireConnection(input, new PassThrough());
    connection.onRequest(Echo, (params, token) => {
      handled.push(params.n);
      return handler(params, token);
    });
    connection.listen();
    return connection;
  }

  const request = (id: number, n: number) => frame(JSON.stringify({ jsonrpc: '2.0', id, method: 'echo', params: { n } }));
  const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

  it('handles messages in arrival order, and once the queue is empty in the turn they arrive', async (t) => {
    const input = new PassThrough();
    const handled: number[] = [];
    const connection = server(input, handled);
    t.after(() => connection.dispose());
    // Before the connection has dispatched anything, messages wait in its queue, which it empties one per turn.
    input.emit('data', Buffer.concat([request(1, 1), request(2, 2), request(3, 3)]));
    assert.deepEqual(handled, []);
    for (let turn = 0; turn < 10 && handled.length < 1; turn++) await nextTurn();
    assert.deepEqual(handled, [1]);
    // 2 and 3 still wait: 4 must not overtake them.
    input.emit('data', request(4, 4));
    for (let turn = 0; turn < 10 && handled.length < 4; turn++) await nextTurn();
    assert.deepEqual(handled, [1, 2, 3, 4]);
    // Now the queue is empty: the next message is handled within the data event itself.
    input.emit('data', request(5, 5));
    assert.deepEqual(handled, [1, 2, 3, 4, 5]);
  });

  it('still cancels a running request on $/cancelRequest', async (t) => {
    const input = new PassThrough();
    const handled: number[] = [];
    let cancelled!: () => void;
    const wasCancelled = new Promise<void>((resolve) => (cancelled = resolve));
    const connection = server(input, handled, (params, token) => {
      if (params.n === 2) token!.onCancellationRequested(() => cancelled());
      return new Promise(() => {});
    });
    t.after(() => connection.dispose());
    input.emit('data', request(1, 1));
    for (let turn = 0; turn < 10 && handled.length < 1; turn++) await nextTurn();
    input.emit('data', request(2, 2));
    assert.deepEqual(handled, [1, 2]);
    input.emit('data', frame(JSON.stringify({ jsonrpc: '2.0', method: '$/cancelRequest', params: { id: 2 } })));
    await wasCancelled;
  });
});
