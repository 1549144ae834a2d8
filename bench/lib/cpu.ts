// Where a figure's CPU went, from /proc (Linux): the CPU time of process trees (a server, the
// PostgreSQL cluster with its backends) and of the whole machine, so that a figure on a shared
// 2-core machine can say how many cores keyhold, its database, the client and everything else used.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

interface ProcStat {
  ppid: number;
  /** utime + stime + cutime + cstime, in seconds (children reaped while measuring stay counted). */
  cpu: number;
}

function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // gone meanwhile
  }
  // The command name (field 2) may hold spaces and parentheses: the fields after it follow the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const [utime, stime, cutime, cstime] = [11, 12, 13, 14].map((i) => Number(fields[i]));
  return { ppid: Number(fields[1]), cpu: (utime! + stime! + cutime! + cstime!) / TICKS_PER_SECOND };
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

/** The processes whose command line contains `text` (e.g. a PostgreSQL cluster's `port=N`), as roots for processTreeCpu. */
export function pidsByCommandLine(text: string): number[] {
  return allPids().filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text);
    } catch {
      return false;
    }
  });
}

/** CPU seconds used so far by `roots` and all their descendants alive now. */
export function processTreeCpu(roots: readonly number[]): number {
  const stats = new Map<number, ProcStat>();
  for (const pid of allPids()) {
    const stat = procStat(pid);
    if (stat) stats.set(pid, stat);
  }
  const tree = new Set(roots.filter((pid) => stats.has(pid)));
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, stat] of stats)
      if (!tree.has(pid) && tree.has(stat.ppid)) {
        tree.add(pid);
        grew = true;
      }
  }
  let cpu = 0;
  for (const pid of tree) cpu += stats.get(pid)!.cpu;
  return cpu;
}

/** CPU seconds the whole machine has been busy (all cores; not idle, not waiting for I/O, not stolen by the hypervisor). */
export function machineBusyCpu(): number {
  const [, ...values] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq] = values.map(Number);
  return (user! + nice! + system! + irq! + softirq!) / TICKS_PER_SECOND;
}

/** This process's own CPU seconds. */
export function ownCpu(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}
