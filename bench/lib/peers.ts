// The round trip's references as the bench calls them: the raw pipe, a child speaking the plugin
// framing (bench/fixtures/raw-peer.ts), and the webhook, an HTTP server (bench/fixtures/webhook-peer.ts)
// called over a keep-alive connection. Both get the same request body a plugin gets, and both run
// in a session of their own, as the host starts plugins: on Linux each session is a scheduling
// group of its own (autogroup), and on a busy machine a child outside the bench's group waits for
// the CPU more often (p99 about 1 ms instead of 0.1 ms, docs/performance.md).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { frame, FrameParser, type HookParams } from 'keyhold-plugin-sdk';
import type { AnswerKind } from './answers.js';
import { minimalEnv } from './env.js';
import { ApiClient } from './http.js';

export interface Peer {
  /** The peer process. */
  pid: number;
  /** One hook request; resolves with the peer's answer. */
  call(params: HookParams): Promise<unknown>;
  close(): Promise<void>;
}

function startChild(fixture: string, kind: AnswerKind): { child: ChildProcessWithoutNullStreams; close: () => Promise<void> } {
  const child = spawn(process.execPath, [fileURLToPath(new URL(`../fixtures/${fixture}.js`, import.meta.url)), kind], {
    env: minimalEnv(),
    stdio: 'pipe',
    detached: true,
  });
  child.stderr.pipe(process.stderr);
  const close = async () => {
    child.stdin.end();
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  };
  return { child, close };
}

/** The pipe floor: the request framed as the host frames a hook call, the answer read back by id. */
export function startRawPeer(kind: AnswerKind): Peer {
  const { child, close } = startChild('raw-peer', kind);
  const pending = new Map<number, (result: unknown) => void>();
  let lastId = 0;
  const parser = new FrameParser(
    (message) => {
      const { id, result } = message as { id: number; result: unknown };
      pending.get(id)?.(result);
      pending.delete(id);
    },
    (err) => {
      throw err;
    },
  );
  child.stdout.on('data', (chunk: Buffer) => parser.push(chunk));
  return {
    pid: child.pid!,
    call(params) {
      const id = ++lastId;
      return new Promise((resolve) => {
        pending.set(id, resolve);
        child.stdin.write(frame(JSON.stringify({ jsonrpc: '2.0', id, method: 'hook', params })));
      });
    },
    close,
  };
}

/** The webhook: each request a POST of the same params over keep-alive connections (as many as are in flight). */
export async function startWebhookPeer(kind: AnswerKind): Promise<Peer> {
  const { child, close } = startChild('webhook-peer', kind);
  const [url] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
  const client = new ApiClient(url);
  return {
    pid: child.pid!,
    call: (params) => client.call('POST', '/hook', params),
    async close() {
      client.close();
      await close();
    },
  };
}
