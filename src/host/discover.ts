// Finding plugin executables: every executable regular file (or symlink to one) in a directory,
// or explicitly named files, each refused when another user could change it (trust.ts); and the
// optional sha256 pin, checked right before each exec.
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { access, readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { untrustedDirectory, untrustedPluginFile } from './trust.js';

export interface PluginFile {
  /** The plugin's name: its file name without the extension (`fail2lock.js` → `fail2lock`). */
  name: string;
  /** Absolute path of the executable. */
  path: string;
}

/** An explicitly named file that cannot be a plugin, or a file or directory that is not trusted, and why. */
export interface RefusedFile extends PluginFile {
  reason: string;
}

export interface Discovery {
  found: PluginFile[];
  refused: RefusedFile[];
}

function nameOf(path: string): string {
  return basename(path, extname(path));
}

/** Why `path` cannot be run as a plugin, or undefined when it can. */
async function unusable(path: string): Promise<string | undefined> {
  let info;
  try {
    info = await stat(path); // follows symlinks: a link to an executable file is a plugin
  } catch {
    return 'no such file (or a broken symlink)';
  }
  if (!info.isFile()) return 'not a regular file';
  try {
    await access(path, constants.X_OK);
  } catch {
    return 'not executable (chmod +x it)';
  }
  return undefined;
}

/**
 * Plugins in `paths`: a directory contributes its executable files (hidden and non-executable
 * ones are skipped with a debug line, so a README never counts); a file is taken as named and
 * refused with a reason when it cannot run. Of two plugins with one name, the second is refused.
 * Unless `requireTrusted` is false, a directory or an executable that another user could change
 * is refused (never skipped: a refusal stops the start, so no site policy is quietly missing).
 */
export async function discoverPlugins(paths: readonly string[], logger: Logger, requireTrusted = true): Promise<Discovery> {
  const result: Discovery = { found: [], refused: [] };
  const candidates: { path: string; explicit: boolean }[] = [];
  for (const given of paths) {
    const path = resolve(given);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isDirectory()) {
      candidates.push({ path, explicit: true });
      continue;
    }
    const untrusted = requireTrusted ? await untrustedDirectory(path) : undefined;
    if (untrusted !== undefined) {
      result.refused.push({ name: nameOf(path), path, reason: untrusted });
      continue;
    }
    for (const entry of (await readdir(path)).sort()) {
      if (entry.startsWith('.')) logger.debug({ file: join(path, entry) }, 'plugin discovery: skipping hidden file');
      else candidates.push({ path: join(path, entry), explicit: false });
    }
  }
  const reasons = await Promise.all(candidates.map((c) => whyNot(c.path, requireTrusted)));
  const names = new Set<string>();
  candidates.forEach(({ path, explicit }, i) => {
    const file = { name: nameOf(path), path };
    const { unusable, untrusted } = reasons[i]!;
    if (unusable !== undefined && !explicit) {
      logger.debug({ file: path, reason: unusable }, 'plugin discovery: skipping file');
      return;
    }
    const reason = unusable ?? untrusted ?? (names.has(file.name) ? `another plugin is already named "${file.name}"` : undefined);
    if (reason !== undefined) {
      result.refused.push({ ...file, reason });
      return;
    }
    names.add(file.name);
    result.found.push(file);
  });
  return result;
}

/** Why `path` is no plugin at all (`unusable`: skipped in a directory), or is one the server must not run (`untrusted`). */
async function whyNot(path: string, requireTrusted: boolean): Promise<{ unusable?: string | undefined; untrusted?: string | undefined }> {
  const problem = await unusable(path);
  if (problem !== undefined || !requireTrusted) return { unusable: problem };
  // The file may vanish between the two checks.
  return { untrusted: await untrustedPluginFile(path).catch((err: Error) => `cannot check who may change it: ${err.message}`) };
}

/** Throws when the file's sha256 is not the pinned one; called before every exec so a swapped file never runs. */
export async function checkChecksum(path: string, expected: string): Promise<void> {
  const actual = createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
  if (actual !== expected)
    throw new Error(`checksum mismatch: the settings pin sha256 ${expected}, the file has ${actual}; refusing to run it`);
}
