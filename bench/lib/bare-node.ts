// The reference for plugin start and idle memory: a bare Node child (bench/fixtures/bare-node.js)
// with the minimal environment plugins get, started like a plugin and ready when it says so.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { minimalEnv } from './env.js';

export interface BareNode {
  child: ChildProcessWithoutNullStreams;
  close(): Promise<void>;
}

/** Starts one and resolves once it has said "ready". */
export async function startBareNode(): Promise<BareNode> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('../fixtures/bare-node.js', import.meta.url))], { env: minimalEnv(), stdio: 'pipe' });
  const exited = once(child, 'exit');
  const close = async () => {
    child.stdin.end();
    if (child.exitCode === null && child.signalCode === null) await exited;
  };
  try {
    await Promise.race([once(child.stdout, 'data'), exited.then(([code]) => Promise.reject(new Error(`the bare node child exited with ${code}`)))]);
  } catch (err) {
    await close();
    throw err;
  }
  return { child, close };
}
