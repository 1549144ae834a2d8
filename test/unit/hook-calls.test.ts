// The host's lane for hook calls (src/host/hook-calls.ts), in-process: the request on the wire,
// answers matched by id, vetoes and failures, timeouts by one sweep with $/cancelRequest, late
// answers dropped, and everything failed at once when the plugin is gone.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FrameParser, type HookParams } from 'keyhold-plugin-sdk';
import { HookCalls } from '../../src/host/hook-calls.js';
import { PluginCallError } from '../../src/lifecycle/dispatcher.js';
import { alice, context } from '../fixtures/plugin-host.js';

/** A lane whose frames are parsed back into messages. */
function lane() {
  const written: { id?: number; method?: string; params?: Record<string, unknown> }[] = [];
  const parser = new FrameParser(
    (m) => written.push(m as (typeof written)[number]),
    (err) => assert.fail(err.message),
  );
  const calls = new HookCalls((data) => parser.push(Buffer.from(data)));
  return { calls, written };
}

const ctx = context('preEntityUpdate');
const params = (): HookParams => ({ hook: 'preEntityUpdate', subject: alice, request: {}, context: ctx });

function failure(kind: PluginCallError['kind'], message: RegExp) {
  return (err: unknown) => err instanceof PluginCallError && err.kind === kind && message.test(err.message);
}

describe('HookCalls', () => {
  it('writes each call as a hook request with its own negative id, and settles it by the answer with that id', async () => {
    const { calls, written } = lane();
    const first = calls.call(params(), 60_000);
    const second = calls.call(params(), 60_000);
    assert.deepEqual(
      written.map((m) => [m.id, m.method]),
      [
        [-1, 'hook'],
        [-2, 'hook'],
      ],
    );
    assert.deepEqual(written[0]!.params, JSON.parse(JSON.stringify(params())));
    assert.ok(calls.receive({ jsonrpc: '2.0', id: -2, result: { state: { b: 2 } } }));
    assert.ok(calls.receive({ jsonrpc: '2.0', id: -1, result: { state: { a: 1 } } }));
    assert.deepEqual(await Promise.all([first, second]), [{ state: { a: 1 } }, { state: { b: 2 } }]);
    assert.equal(calls.size, 0);
  });

  it('leaves every other message to the connection', async () => {
    const { calls } = lane();
    const call = calls.call(params(), 60_000).catch(() => undefined);
    assert.equal(calls.receive({ jsonrpc: '2.0', id: 0, result: {} }), false, "the connection's own requests count up from 0");
    assert.equal(calls.receive({ jsonrpc: '2.0', method: '$/log', params: {} }), false);
    assert.equal(calls.receive({ jsonrpc: '2.0', id: -1, method: 'hook' }), false, 'a request is no answer');
    calls.failAll(new PluginCallError('crash', 'done'));
    await call;
  });

  it("rejects a veto as a veto and any other error answer as a crash, with the plugin's message", async () => {
    const { calls } = lane();
    const vetoed = calls.call(params(), 60_000);
    const failed = calls.call(params(), 60_000);
    const odd = calls.call(params(), 60_000);
    calls.receive({ jsonrpc: '2.0', id: -1, error: { code: -32001, message: 'not today' } });
    calls.receive({ jsonrpc: '2.0', id: -2, error: { code: -32603, message: 'bug' } });
    calls.receive({ jsonrpc: '2.0', id: -3, error: 'what' });
    await assert.rejects(vetoed, failure('veto', /^not today$/));
    await assert.rejects(failed, failure('crash', /^bug$/));
    await assert.rejects(odd, failure('crash', /an error that has no message: "what"/));
  });

  it('times calls out by their own timeouts, cancels them on the wire, and drops their late answers', async () => {
    const { calls, written } = lane();
    const long = calls.call(params(), 60_000);
    const short = calls.call(params(), 30);
    const shorter = calls.call(params(), 10);
    await assert.rejects(shorter, failure('timeout', /^no answer within 10 ms$/));
    await assert.rejects(short, failure('timeout', /^no answer within 30 ms$/));
    // (In one sweep or two: a loaded machine may run the first one late.)
    assert.deepEqual(
      written
        .filter((m) => m.method === '$/cancelRequest')
        .map((m) => Number(m.params!.id))
        .sort((a, b) => a - b),
      [-3, -2],
    );
    assert.ok(calls.receive({ jsonrpc: '2.0', id: -3, result: { state: {} } }), 'a late answer is taken off the wire');
    assert.equal(calls.size, 1);
    calls.receive({ jsonrpc: '2.0', id: -1, result: { state: {} } });
    assert.deepEqual(await long, { state: {} });
  });

  it('fails every call in flight at once when the plugin is gone, and says when none is left', async () => {
    const { calls } = lane();
    const inFlight = [calls.call(params(), 60_000), calls.call(params(), 60_000)];
    let idle = false;
    const waited = calls.idle().then(() => (idle = true));
    await Promise.resolve();
    assert.equal(idle, false);
    calls.failAll(new PluginCallError('crash', 'the plugin exited with code 7'));
    for (const call of inFlight) await assert.rejects(call, failure('crash', /exited with code 7/));
    await waited;
    assert.ok(idle);
  });

  it('keeps ids within 32-bit integers, starting again at -1', async () => {
    const { calls, written } = lane();
    // The lowest id is reached after 2^31 calls: start just above it.
    (calls as unknown as { lastId: number }).lastId = -0x7fffffff;
    const inFlight = [calls.call(params(), 60_000), calls.call(params(), 60_000)].map((c) => c.catch(() => undefined));
    assert.deepEqual(
      written.map((m) => m.id),
      [-0x80000000, -1],
    );
    calls.failAll(new PluginCallError('crash', 'done'));
    await Promise.all(inFlight);
  });
});
