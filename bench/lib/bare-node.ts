// The reference for plugin start and idle memory: a bare Node child (bench/fixtures/bare-node.js)
// started exactly as the host starts a plugin (spawnPlugin: execa, the plugin environment, a
// process group and session of its own), ready when it says so. The same spawn path puts it in the
// same place in the scheduler: on Linux each session is a scheduling group of its own (autogroup),
// and on a busy machine children sharing the bench's group started up to twice as slowly.
import { once } from 'node:events';
import { spawnPlugin } from '../../src/host/process.js';
import { benchFixture } from './plugins.js';

export interface BareNode {
  pid: number;
  close(): Promise<void>;
}

/** Starts one and resolves once it has said "ready". */
export async function startBareNode(): Promise<BareNode> {
  const proc = spawnPlugin({ name: 'bare-node', path: benchFixture('bare-node') });
  const close = async () => {
    proc.stdin.end();
    await proc.exited;
  };
  try {
    await Promise.race([
      once(proc.stdout, 'data'),
      proc.exited.then((info) => Promise.reject(new Error(`the bare node child exited (${JSON.stringify(info)}) before it was ready`))),
    ]);
  } catch (err) {
    await close();
    throw err;
  }
  return { pid: proc.pid!, close };
}
