// The plugin's end of the JSON-RPC connection (sdk/src/rpc-endpoint.ts), in-process: answers by
// id in the turn a synchronous handler returns, errors with their codes, cancellation, and a
// result or stream it cannot handle without bringing the plugin down.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { frame, FrameParser, RpcEndpoint, RpcError, type FramingError, type RequestCall } from 'keyhold-plugin-sdk';

/** An endpoint over in-memory streams: what it wrote, parsed; whether it saw its input close or break. */
function endpoint() {
  const input = new PassThrough();
  const written: Record<string, unknown>[] = [];
  const events = { closed: 0, broken: [] as FramingError[] };
  const parser = new FrameParser(
    (m) => written.push(m as Record<string, unknown>),
    (err) => assert.fail(err.message),
  );
  const rpc = new RpcEndpoint(
    input,
    (data) => parser.push(Buffer.from(data)),
    () => events.closed++,
    (err) => events.broken.push(err),
  );
  rpc.listen();
  const send = (message: object) => input.write(frame(JSON.stringify({ jsonrpc: '2.0', ...message })));
  return { rpc, input, written, events, send };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('RpcEndpoint', () => {
  it('answers a synchronous handler in the turn the request arrives, an asynchronous one when it settles, undefined as null', async () => {
    const { rpc, input, written } = endpoint();
    rpc.onRequest('now', (params: { n: number }) => params.n * 2);
    rpc.onRequest('later', async () => undefined);
    input.emit('data', Buffer.from(frame('{"jsonrpc":"2.0","id":-7,"method":"now","params":{"n":21}}')));
    assert.deepEqual(written, [{ jsonrpc: '2.0', id: -7, result: 42 }]);
    input.emit('data', Buffer.from(frame('{"jsonrpc":"2.0","id":"x","method":"later"}')));
    await tick();
    assert.deepEqual(written[1], { jsonrpc: '2.0', id: 'x', result: null });
  });

  it('answers errors: an RpcError with its code, any other error as an internal error, a result that is not JSON too', async () => {
    const { rpc, send, written } = endpoint();
    rpc.onRequest('veto', () => {
      throw new RpcError(-32001, 'no');
    });
    rpc.onRequest('bug', async () => {
      throw new Error('oops');
    });
    rpc.onRequest('bigint', () => 1n);
    send({ id: 1, method: 'veto' });
    send({ id: 2, method: 'bug' });
    send({ id: 3, method: 'bigint' });
    send({ id: 4, method: 'nothing' });
    for (let i = 0; i < 10 && written.length < 4; i++) await tick();
    const byId = Object.fromEntries(written.map((m) => [m.id, m.error]));
    assert.deepEqual(byId[1], { code: -32001, message: 'no' });
    assert.deepEqual(byId[2], { code: -32603, message: 'Request bug failed with message: oops' });
    assert.match((byId[3] as { message: string }).message, /^Request bigint failed with message: .*BigInt/);
    assert.deepEqual(byId[4], { code: -32601, message: 'Unhandled method nothing' });
  });

  it('cancels the running request named by $/cancelRequest, and ignores other notifications and responses', async () => {
    const { rpc, send, written } = endpoint();
    const calls: RequestCall[] = [];
    let cancelled = 0;
    rpc.onRequest('wait', (_params, call: RequestCall) => {
      calls.push(call);
      call.onCancel(() => cancelled++);
      return new Promise(() => {});
    });
    send({ id: 1, method: 'wait' });
    send({ id: 2, method: 'wait' });
    send({ method: '$/cancelRequest', params: { id: 9 } });
    send({ method: 'other/notification', params: {} });
    send({ id: 5, result: null });
    await tick();
    assert.deepEqual([cancelled, written], [0, []]);
    send({ method: '$/cancelRequest', params: { id: 2 } });
    await tick();
    assert.deepEqual([cancelled, calls.map((c) => c.cancelled)], [1, [false, true]]);
    // A listener added after the cancellation is called at once.
    let late = false;
    calls[1]!.onCancel(() => (late = true));
    assert.ok(late);
  });

  it('reports its input closing, and bad framing once, reading nothing after it', async () => {
    const { rpc, input, written, events } = endpoint();
    rpc.onRequest('ping', () => null);
    input.emit('data', Buffer.from('hello\n'));
    input.emit('data', Buffer.from(frame('{"jsonrpc":"2.0","id":1,"method":"ping"}')));
    assert.equal(events.broken.length, 1);
    assert.match(events.broken[0]!.message, /not a JSON-RPC message/);
    assert.deepEqual(written, []);
    input.destroy();
    await tick();
    assert.equal(events.closed, 1);
  });

  it('sends requests of its own numbered 0, 1, …, settles each by its answer (a result, or an RpcError with the code) and fails those waiting when the host closes', async () => {
    const { rpc, input, send, written } = endpoint();
    rpc.onRequest('ping', () => 'pong');
    const first = rpc.request('state/get', { key: 'a' });
    const second = rpc.request('state/set', { key: '', value: 'x' });
    assert.deepEqual(written, [
      { jsonrpc: '2.0', id: 0, method: 'state/get', params: { key: 'a' } },
      { jsonrpc: '2.0', id: 1, method: 'state/set', params: { key: '', value: 'x' } },
    ]);
    // A request of the host's with the same id is still a request: answered, not taken for an answer.
    send({ id: 1, method: 'ping' });
    assert.deepEqual(written[2], { jsonrpc: '2.0', id: 1, result: 'pong' });
    send({ id: 1, error: { code: -32602, message: 'key: must not be empty' } });
    send({ id: 0, result: null });
    assert.equal(await first, null);
    await assert.rejects(
      second,
      (err: unknown) => err instanceof RpcError && err.code === -32602 && err.message === 'key: must not be empty',
    );
    const waiting = rpc.request('state/get', { key: 'b' });
    input.end();
    input.destroy();
    await assert.rejects(waiting, (err: unknown) => err instanceof RpcError && /the host closed the connection/.test(err.message));
    await assert.rejects(rpc.request('state/get', { key: 'c' }), /the connection to the host is closed/);
  });
});
