// Benchmark plugin sets: temporary directories of symlinks to the pass-through plugin, each with
// its own `hooks`, and a PluginHost over one, with the server's defaults (no test shortcuts).
import { chmodSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HookName } from 'keyhold-plugin-sdk';
import { pino } from 'pino';
import { PluginHost } from '../../src/host/host.js';
import { parsePluginSettings } from '../../src/host/settings.js';

/** A compiled bench fixture, made executable (tsc writes files without the x bit). */
export function benchFixture(name: string): string {
  const path = fileURLToPath(new URL(`../fixtures/${name}.js`, import.meta.url));
  chmodSync(path, 0o755);
  return path;
}

export type HookChoice = readonly HookName[] | 'all';

export interface PluginSet {
  directory: string;
  /** The `plugins:` settings section for this set (raw, as in the server's YAML). */
  settings: Record<string, unknown>;
  remove(): void;
}

/** One executable of a set: the file its link points to, and its `config:` if any. */
export interface SetEntry {
  file: string;
  config?: Record<string, unknown>;
}

/** A temporary plugin directory of links named by `entries`' keys. */
function linkedSet(entries: Record<string, SetEntry>): PluginSet {
  const directory = mkdtempSync(join(tmpdir(), 'keyhold-bench-plugins-'));
  const plugins: Record<string, unknown> = {};
  for (const [name, { file, config }] of Object.entries(entries)) {
    symlinkSync(file, join(directory, name));
    if (config) plugins[name.replace(/\.[^.]*$/, '')] = { config };
  }
  return { directory, settings: { directory, plugins }, remove: () => rmSync(directory, { recursive: true, force: true }) };
}

/**
 * A directory of pass-through plugins named p1, p2, …, plugin i implementing `hooks[i]`, each
 * answering `answer` (bench/fixtures/pass-through-plugin.ts); `extra` adds other executables by name.
 */
export function pluginSet(hooks: readonly HookChoice[], extra: Record<string, string | SetEntry> = {}, answer = 'unchanged'): PluginSet {
  const plugin = benchFixture('pass-through-plugin');
  const entries: Record<string, SetEntry> = {};
  hooks.forEach(
    (choice, i) => (entries[`p${i + 1}.js`] = { file: plugin, config: { hooks: choice === 'all' ? 'all' : [...choice], answer } }),
  );
  for (const [name, entry] of Object.entries(extra)) entries[name] = typeof entry === 'string' ? { file: entry } : entry;
  return linkedSet(entries);
}

/** A directory of `n` links to the plugin `file`, named s1, s2, …, with its default config. */
export function copiesSet(file: string, n: number): PluginSet {
  return linkedSet(Object.fromEntries(Array.from({ length: n }, (_, i) => [`s${i + 1}`, { file }])));
}

/** A host over `set` with the server's default settings. It logs only fatal records: the crashes the bench causes are expected, and a failure surfaces as an exception. */
export function benchHost(set: PluginSet): PluginHost {
  return new PluginHost({ settings: parsePluginSettings(set.settings), logger: pino({ level: 'fatal' }), hostVersion: '0.1.0-bench' });
}
