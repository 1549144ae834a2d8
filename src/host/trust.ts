// Which files the server may run as its own user. A plugin runs with everything the server's user
// may do, so whoever can change a plugin file, or the directory it sits in, owns the server. The
// rule: the plugin directory, the plugin file, every directory a symlink on the way lives in and
// the file it finally leads to are owned by the server's user or root and not writable by group
// or others. Discovery, verify, reload and every (re)start of a plugin all ask this one module.
import type { Stats } from 'node:fs';
import { lstat, readlink, realpath, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/** The setting that turns the rule off, named in every refusal. */
const TRUST_OPT_OUT = 'plugins.allowUntrustedFiles: true';

/** Mode bits that let users other than the owner change a file, or add, remove and rename a directory's entries. */
const WRITABLE_BY_OTHERS = 0o022;

/** Linux gives up after 40 symlinks in a path; so does this. */
const MAX_SYMLINK_HOPS = 40;

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** "group", "others" or "group and others", for the `bits` of `mode` that are set. */
function whoElse(mode: number, bits: number): string | undefined {
  const group = (mode & bits & 0o070) !== 0;
  const others = (mode & bits & 0o007) !== 0;
  return group && others ? 'group and others' : group ? 'group' : others ? 'others' : undefined;
}

/** What lets another user at a file, and the command that takes it away (both without the path). */
export interface AccessProblem {
  /** e.g. "is writable by group and others (mode 0777)" */
  state: string;
  /** e.g. "chmod go-w" */
  fix: string;
}

export interface AccessRule {
  /** Mode bits group and others must not have. */
  bits: number;
  /** What those bits allow, e.g. "writable". */
  access: string;
  /** The chmod that takes them away, e.g. "chmod go-w". */
  chmod: string;
  /** Whom to chown a file owned by another user to. */
  chownTo: string;
}

/** Why users other than the server's own and root can get at a file stat'ed as `info`: another owner, or a mode that breaks `rule`. */
export function accessProblem(info: Stats, rule: AccessRule): AccessProblem | undefined {
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid && info.uid !== 0)
    return { state: `is owned by uid ${info.uid}, not by root or the server's user (uid ${uid})`, fix: `chown ${rule.chownTo}` };
  const who = whoElse(info.mode, rule.bits);
  return who === undefined ? undefined : { state: `is ${rule.access} by ${who} (mode ${octal(info.mode)})`, fix: rule.chmod };
}

const PLUGIN_RULE: AccessRule = { bits: WRITABLE_BY_OTHERS, access: 'writable', chmod: 'chmod go-w', chownTo: 'root' };

/** Why someone besides the server's user and root could change `path` (a file, or a directory's entries): "PATH is …" and the fix for PATH. */
function changeableByOthers(path: string, info: Stats): { state: string; fix: string } | undefined {
  const problem = accessProblem(info, PLUGIN_RULE);
  return problem && { state: `${path} ${problem.state}`, fix: `${problem.fix} ${path}` };
}

/** The plugin directory itself: why it cannot be trusted (the full refusal), or undefined. */
export async function untrustedDirectory(path: string): Promise<string | undefined> {
  const real = await realpath(path);
  const problem = changeableByOthers(real, await stat(real));
  return (
    problem &&
    refusal(
      `the plugin directory ${problem.state}: another user could put a program there for the server to run as its own user`,
      problem.fix,
    )
  );
}

/**
 * Why the plugin at `path` cannot be trusted (the full refusal), or undefined: follows each symlink
 * hop by hop and checks the directory every hop lives in (resolved), then the file the chain ends at.
 */
export async function untrustedPluginFile(path: string): Promise<string | undefined> {
  let current = path;
  for (let hop = 0; hop <= MAX_SYMLINK_HOPS; hop++) {
    const directory = await realpath(dirname(current));
    const info = await lstat(current);
    const problem =
      changeableByOthers(directory, await stat(directory)) ?? (info.isSymbolicLink() ? undefined : changeableByOthers(current, info));
    if (problem !== undefined) {
      const via = current === path ? '' : `${path} leads (through symlinks) to ${current}, and `;
      return refusal(`${via}${problem.state}: another user could change what the server runs as its own user`, problem.fix);
    }
    if (!info.isSymbolicLink()) return undefined;
    current = resolve(dirname(current), await readlink(current));
  }
  return `${path}: more than ${MAX_SYMLINK_HOPS} symlinks`;
}

/** Throws the refusal when the plugin at `path` cannot be trusted; called right before every exec, so a file changed since discovery never runs. */
export async function checkTrusted(path: string): Promise<void> {
  const problem = await untrustedPluginFile(path);
  if (problem !== undefined) throw new Error(problem);
}

/** A refusal: the problem, its fix, and the dangerous way out. */
function refusal(problem: string, fix: string): string {
  return `untrusted: ${problem}; fix: ${fix} (or, only if every local user may run programs as the server's user, set ${TRUST_OPT_OUT})`;
}
