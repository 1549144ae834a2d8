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

/** A directory of pass-through plugins named p1, p2, …, plugin i implementing `hooks[i]`; `extra` adds other executables by name. */
export function pluginSet(hooks: readonly HookChoice[], extra: Record<string, string> = {}): PluginSet {
  const directory = mkdtempSync(join(tmpdir(), 'keyhold-bench-plugins-'));
  const plugin = benchFixture('pass-through-plugin');
  const plugins: Record<string, unknown> = {};
  hooks.forEach((choice, i) => {
    symlinkSync(plugin, join(directory, `p${i + 1}.js`));
    plugins[`p${i + 1}`] = { config: { hooks: choice === 'all' ? 'all' : [...choice] } };
  });
  for (const [name, path] of Object.entries(extra)) symlinkSync(path, join(directory, name));
  return { directory, settings: { directory, plugins }, remove: () => rmSync(directory, { recursive: true, force: true }) };
}

/** A host over `set` with the server's default settings. It logs only fatal records: the crashes the bench causes are expected, and a failure surfaces as an exception. */
export function benchHost(set: PluginSet): PluginHost {
  return new PluginHost({ settings: parsePluginSettings(set.settings), logger: pino({ level: 'fatal' }), hostVersion: '0.1.0-bench' });
}
