// Reference: Node's floor for a round trip, newline-delimited JSON over a child's stdio pipes.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { minimalEnv } from './lib/env.js';

/** A started raw echo child: `call` sends one request and resolves with its echo. */
export interface RawPeer {
  call(params: unknown): Promise<unknown>;
  close(): Promise<void>;
}

export function startRawPeer(): RawPeer {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/raw-echo-peer.js', import.meta.url))], {
    env: minimalEnv(),
    stdio: 'pipe',
  });
  const pending = new Map<number, (result: unknown) => void>();
  let nextId = 0;
  createInterface({ input: child.stdout }).on('line', (line) => {
    const reply = JSON.parse(line) as { id: number; result: unknown };
    pending.get(reply.id)?.(reply.result);
    pending.delete(reply.id);
  });
  return {
    call(params) {
      const id = nextId++;
      return new Promise((resolve) => {
        pending.set(id, resolve);
        child.stdin.write(`${JSON.stringify({ id, params })}\n`);
      });
    },
    async close() {
      child.stdin.end();
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}
