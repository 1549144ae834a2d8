// The SDK's end of the wire, seen from the wire: a real SDK plugin process (test/fixtures/plugins/
// faulty.ts) spoken to in raw frames, as a host written from docs/protocol.md would. What it
// answers, and when it leaves the object out of the answer (unchanged) or sends it whole.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { frame, FrameParser, PluginErrorCodes } from 'keyhold-plugin-sdk';
import { pluginEnvironment } from '../../src/host/process.js';
import { alice, fixture } from '../fixtures/plugin-host.js';

interface Reply {
  id?: number | string;
  method?: string;
  result?: { subject?: { meta: { displayName: string } }; state: Record<string, unknown> } & Record<string, unknown>;
  error?: { code: number; message: string };
  params?: Record<string, unknown>;
}

/** The plugin process and what it wrote, message by message. */
class RawHost {
  readonly child: ChildProcessWithoutNullStreams;
  private readonly received: Reply[] = [];
  private wake: (() => void) | undefined;

  constructor() {
    // The environment the host gives a plugin (the cookie, and the test run's marker for the leftover check).
    this.child = spawn(fixture('faulty'), [], { env: pluginEnvironment(), stdio: 'pipe' });
    const parser = new FrameParser(
      (message) => {
        this.received.push(message as Reply);
        this.wake?.();
      },
      (err) => assert.fail(`the plugin broke the framing: ${err.message}`),
    );
    this.child.stdout.on('data', (chunk: Buffer) => parser.push(chunk));
  }

  send(message: unknown): void {
    this.child.stdin.write(frame(JSON.stringify({ jsonrpc: '2.0', ...(message as object) })));
  }

  /** The first message received (now or within 5 s) that `match` accepts; it is taken off the list. */
  async next(match: (reply: Reply) => boolean): Promise<Reply> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const at = this.received.findIndex(match);
      if (at >= 0) return this.received.splice(at, 1)[0]!;
      if (Date.now() > deadline) assert.fail(`no such message from the plugin; it sent ${JSON.stringify(this.received)}`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 100);
      });
    }
  }

  /** One request, answered by id. */
  async request(id: number | string, method: string, params?: unknown): Promise<Reply> {
    this.send({ id, method, params });
    return this.next((r) => r.id === id && r.method === undefined);
  }

  hook(id: number, fault: string, operation = 'entity.update-meta'): Promise<Reply> {
    return this.request(id, 'hook', {
      hook: 'preEntityUpdate',
      subject: alice,
      request: { fault },
      context: { requestId: `r${id}`, operation, caller: null, deadline: Date.now() + 60_000, state: { n: id } },
    });
  }
}

describe('an SDK plugin on the wire', () => {
  let host: RawHost;
  before(async () => {
    host = new RawHost();
    const init = await host.request(0, 'initialize', {
      protocolVersions: [1],
      hostVersion: 'test',
      pluginName: 'faulty',
      config: {},
      logLevel: 'info',
    });
    assert.deepEqual(init.result?.hooks, ['preEntityUpdate']);
  });
  after(async () => {
    const exited = once(host.child, 'exit');
    host.child.stdin.end();
    await exited;
  });

  it('answers an unchanged object with the state alone, and one changed in place whole, also after an unchanged answer', async () => {
    // `unchanged`: the SDK made no copy and sends none.
    assert.deepEqual((await host.hook(-1, 'unchanged')).result, { state: { n: -1 } });
    // Then an edit in place: without a copy to compare with, the object goes back whole.
    assert.equal((await host.hook(-2, 'in-place')).result?.subject?.meta.displayName, 'changed in place');
    // The object as given, untouched: the copy taken before the call (the last answer was the object) shows it unchanged.
    assert.deepEqual((await host.hook(-3, 'same')).result, { state: { n: -3 } });
    // A new object is sent whole.
    assert.equal((await host.hook(-4, 'other')).result?.subject?.meta.displayName, 'Alice+faulty');
  });

  it("refuses a call whose operation is not one OPERATIONS lists at the hook's point, without calling the hook", async () => {
    const unknown = await host.hook(-20, 'veto', 'entity.frobnicate');
    assert.equal(unknown.error?.code, -32602);
    assert.match(
      unknown.error?.message ?? '',
      /"entity\.frobnicate" is not one of OPERATIONS \(at EntityUpdate: entity\.update-meta, entity\.untyped-meta, /,
    );
    // A real operation, but of another point: as wrong.
    assert.match(
      (await host.hook(-21, 'veto', 'group.create')).error?.message ?? '',
      /group\.create runs at GroupCreate, not at EntityUpdate/,
    );
  });

  it('keeps its word for `unchanged`: an edit in place is not sent', async () => {
    assert.deepEqual((await host.hook(-5, 'in-place-but-unchanged')).result, { state: { n: -5 } });
  });

  it('answers a veto, a thrown error and a missing return with their codes and messages, logging the failures', async () => {
    assert.deepEqual((await host.hook(-6, 'veto')).error, {
      code: PluginErrorCodes.Veto,
      message: 'display names may not be changed today',
    });
    assert.deepEqual((await host.hook(-7, 'throw')).error, { code: -32603, message: 'bug in the plugin' });
    assert.match(
      (await host.hook(-8, 'no-return')).error?.message ?? '',
      /^preEntityUpdate returned undefined: return the object it was given, changed or not/,
    );
    for (let i = 0; i < 2; i++) assert.equal((await host.next((r) => r.method === '$/log')).params?.msg, 'preEntityUpdate failed');
  });

  it('aborts the signal of a call the host cancels, and answers the other calls meanwhile', async () => {
    host.send({
      id: 40,
      method: 'hook',
      params: {
        hook: 'preEntityUpdate',
        subject: alice,
        request: { fault: 'hang' },
        context: { requestId: 'r40', operation: 'entity.update-meta', caller: null, deadline: 0, state: {} },
      },
    });
    assert.deepEqual((await host.hook(41, 'unchanged')).result, { state: { n: 41 } });
    host.send({ method: '$/cancelRequest', params: { id: 40 } });
    const log = await host.next((r) => r.method === '$/log' && r.params?.msg === 'hook call aborted');
    assert.match(String((log.params?.fields as Record<string, unknown>).reason), /the host cancelled preEntityUpdate/);
    assert.match((await host.next((r) => r.id === 40)).error?.message ?? '', /the host cancelled preEntityUpdate/);
  });

  it('echoes string ids, answers unknown methods with -32601, a hook it lacks with UnknownHook, and ignores notifications', async () => {
    host.send({ method: 'something/else', params: {} });
    assert.equal((await host.request('abc', '$/ping')).result, null);
    assert.deepEqual((await host.request(50, 'no/such/method')).error, { code: -32601, message: 'Unhandled method no/such/method' });
    const unknownHook = await host.request(51, 'hook', { hook: 'preGroupCreate', subject: {}, request: {}, context: { state: {} } });
    assert.equal(unknownHook.error?.code, PluginErrorCodes.UnknownHook);
  });
});
