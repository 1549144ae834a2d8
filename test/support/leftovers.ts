// The processes a test run left behind. scripts/run-tests.mjs gives every process of its run a
// random marker in the environment (TEST_RUN_ENV=<run id>), which children inherit: test
// files, the servers they start, their plugins (the host passes the marker on) and whatever those
// start. Counting only processes with this run's marker leaves alone a keyhold server and its
// plugins running beside the tests, and the processes of another run.
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { TEST_RUN_ENV } from '../../src/host/process.js';

export { TEST_RUN_ENV };

export interface MarkedProcess {
  pid: number;
  /** Its command line, to say what was left. */
  command: string;
}

/** Running processes (not this one) whose environment has TEST_RUN_ENV=`runId`. Zombies run nothing and have no environment left to match. */
export function markedProcesses(runId: string): MarkedProcess[] {
  const marker = `\0${TEST_RUN_ENV}=${runId}\0`;
  const found: MarkedProcess[] = [];
  for (const entry of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      if (!`\0${readFileSync(`/proc/${pid}/environ`, 'latin1')}`.includes(marker)) continue;
      found.push({ pid, command: readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').join(' ').trim() });
    } catch {
      // The process ended while we looked, or is not ours to read (then it is not one of ours either).
    }
  }
  return found;
}

/** The marked processes still running after up to `graceMs`: the last tests' children may still be on their way out. */
export async function leftoverProcesses(runId: string, graceMs = 5000): Promise<MarkedProcess[]> {
  const until = Date.now() + graceMs;
  for (;;) {
    const left = markedProcesses(runId);
    if (left.length === 0 || Date.now() >= until) return left;
    await sleep(100);
  }
}
