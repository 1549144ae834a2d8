// Spawning and killing one plugin process. The child gets stdio pipes, the magic cookie and a
// minimal environment: nothing of the host's (secrets, tokens, NODE_OPTIONS, extra CA files).
// Each plugin leads a process group of its own, and signals go to the whole group: processes a
// plugin starts end with it (stop, crash, reload), instead of living on as orphans.
import { execa } from 'execa';
import { dirname } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE } from 'keyhold-plugin-sdk';
import type { PluginFile } from './discover.js';

export interface ExitInfo {
  code: number | null;
  signal: string | null;
  /** Set when the process could not be started at all (e.g. EACCES, a bad interpreter line). */
  spawnError?: string;
}

export interface PluginProcess {
  /** Undefined when the spawn itself failed. */
  readonly pid: number | undefined;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Resolves once the process is gone (or never started); what was left of its group has been sent SIGKILL by then. */
  readonly exited: Promise<ExitInfo>;
  /** Signals the plugin's process group: the plugin and the processes it started. */
  kill(signal: NodeJS.Signals): void;
}

/** Variables a plugin may need to run at all; everything else of the host's stays out. */
const PASSED_THROUGH = ['PATH', 'HOME', 'LANG', 'TZ'] as const;

/**
 * Test runs only: scripts/run-tests.mjs marks the processes it starts with a random id, which the
 * plugins of a marked host inherit, so that its check for left-behind processes counts its own and
 * no keyhold server running beside it. Never set in production, so never passed there.
 */
export const TEST_RUN_ENV = 'KEYHOLD_TEST_RUN_ID';

/** The environment a plugin starts with, built from the host's own (`hostEnv`). */
export function pluginEnvironment(hostEnv: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = { [MAGIC_COOKIE_KEY]: MAGIC_COOKIE_VALUE };
  for (const key of [...PASSED_THROUGH, TEST_RUN_ENV]) {
    const value = hostEnv[key];
    if (value !== undefined) env[key] = value;
  }
  return env;
}

/** Sends `signal` to the process group led by `pid`; a group that is already empty is no error. */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: nothing left in the group.
  }
}

/** The groups of plugins still running: a host that exits without stopping them (a second Ctrl-C, a fatal error) ends them on its way out. */
const runningGroups = new Set<number>();
let endGroupsOnExit = false;

/** Starts the plugin executable in its own directory, as the leader of a new process group. */
export function spawnPlugin(file: PluginFile): PluginProcess {
  const child = execa(file.path, [], {
    stdio: 'pipe',
    buffer: false,
    reject: false,
    env: pluginEnvironment(),
    extendEnv: false,
    cwd: dirname(file.path),
    // setsid(): the plugin's pid is its group's id, so the group can be signalled as one.
    detached: true,
    // The stop sequence below owns signals; execa's own delayed SIGKILL would race it.
    forceKillAfterDelay: false,
  });
  const pid = child.pid;
  let running = pid !== undefined;
  if (pid !== undefined) runningGroups.add(pid);
  if (!endGroupsOnExit) {
    endGroupsOnExit = true;
    process.once('exit', () => runningGroups.forEach((group) => signalGroup(group, 'SIGTERM')));
  }
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      running = false;
      runningGroups.delete(pid!);
      // The plugin is gone; what it started is not needed by anyone (and would hold its pipes open).
      signalGroup(pid!, 'SIGKILL');
      resolve({ code, signal });
    });
    child.once('error', (err) => resolve({ code: null, signal: null, spawnError: err.message }));
  });
  // With reject: false execa's own promise never rejects; the events above carry everything.
  void child.catch(() => undefined);
  return {
    pid: child.pid,
    stdin: child.stdin,
    stdout: child.stdout,
    stderr: child.stderr,
    exited,
    kill: (signal) => {
      if (running) signalGroup(pid!, signal);
    },
  };
}

/** True when `promise` settles within `ms`. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(resolve, ms, false);
  });
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Stops a plugin the polite way first: `askToExit` (the shutdown request and closing stdin), up to
 * `graceMs` for it to exit, then SIGTERM to its process group and another grace period, then
 * SIGKILL to the group. Once the plugin has exited, the rest of its group is killed (spawnPlugin).
 */
export async function stopProcess(proc: PluginProcess, graceMs: number, askToExit: () => Promise<unknown>): Promise<ExitInfo> {
  if (await settlesWithin(Promise.all([askToExit().catch(() => undefined), proc.exited]), graceMs)) return proc.exited;
  proc.kill('SIGTERM');
  if (await settlesWithin(proc.exited, graceMs)) return proc.exited;
  proc.kill('SIGKILL');
  return proc.exited;
}
