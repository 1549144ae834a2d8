// The `plugins:` section of the server's YAML, parsed once into typed settings with defaults.
// Every error names the key path and what is wrong, so an admin can fix the file from the message.
import { parseDuration, type JsonObject, type VerifyMode } from 'keyhold-plugin-sdk';
import type { FailureMode, PluginMode } from '../lifecycle/dispatcher.js';
import { didYouMean } from '../suggest.js';

export interface RestartPolicy {
  /** Delay before the first restart after a crash; doubles with every crash in a row. */
  initialDelayMs: number;
  maxDelayMs: number;
  /** The crash that makes this many within `windowMs` marks the plugin failed (it stays down until reload). */
  maxCrashes: number;
  windowMs: number;
  /** After running this long without a crash, the next restart is again after `initialDelayMs`. */
  resetAfterMs: number;
}

export interface PluginEntry {
  enabled: boolean;
  /** Call order: lower first, ties by name. */
  order: number;
  failureMode: FailureMode;
  /** `shadow`: called, and what it would have done logged and counted, but never obeyed. */
  mode: PluginMode;
  /**
   * Break-glass: ids of the entities this plugin is never called for as a hook's subject (for
   * AuthCheck, the entity logging in). Undefined: the default, the bootstrap root for a plugin
   * that hooks AuthCheck and nobody otherwise (src/host/break-glass.ts).
   */
  exempt: string[] | undefined;
  /** Accepts that this plugin may lock everyone out: lets it hook AuthCheck with no exempt entity. */
  allowLockout: boolean;
  /** For a verify plugin: how its answer combines with the built-in check; undefined: the first mode the plugin declares. */
  verifyMode: VerifyMode | undefined;
  /** For a verify plugin that is down, crashes or times out: refuse the login (`none`) or check the secret as if the plugin did not claim the entity (`builtin`). */
  verifyFallback: 'none' | 'builtin';
  /** How long one hook call may take. */
  timeoutMs: number;
  /** Lower-case hex sha256 the file must have, or undefined for no pin. */
  sha256: string | undefined;
  /** Passed to the plugin at initialize. */
  config: JsonObject;
}

export interface PluginSettings {
  /** Directory scanned for plugin executables (when `list` is not given). */
  directory: string;
  /** True when `directory` was set rather than defaulted: then it must exist (a missing one would mean no site policy). */
  directoryConfigured: boolean;
  /** Explicit plugin files instead of a directory scan. */
  list: string[] | undefined;
  startTimeoutMs: number;
  /** Default per-call timeout for plugins without their own `timeout`. */
  callTimeoutMs: number;
  shutdownGraceMs: number;
  /** Health ping period; 0 turns pings off. */
  pingIntervalMs: number;
  restart: RestartPolicy;
  /** Per-plugin settings by plugin name (the file name without its extension). */
  plugins: Record<string, PluginEntry>;
  /** Dangerous: run plugin files and directories that users other than the server's and root can change (trust.ts). */
  allowUntrustedFiles: boolean;
}

export const DEFAULT_ORDER = 100;

type Raw = Record<string, unknown>;

function fail(path: string, problem: string): never {
  throw new Error(`${path}: ${problem}`);
}

/** An absent mapping is an empty one. */
function mapping(value: unknown, path: string): Raw {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) fail(path, `expected a mapping, got ${JSON.stringify(value)}`);
  return value as Raw;
}

/** A mapping with a fixed set of keys: a misspelt key is an error, not silently ignored. */
function section(value: unknown, path: string, keys: readonly string[]): Raw {
  const raw = mapping(value, path);
  for (const key of Object.keys(raw)) {
    if (!keys.includes(key)) fail(`${path}.${key}`, `unknown key${didYouMean(key, keys)}; expected one of ${keys.join(', ')}`);
  }
  return raw;
}

function duration(raw: Raw, key: string, path: string, fallback: string | number): number {
  try {
    return parseDuration(raw[key] ?? fallback);
  } catch (err) {
    return fail(`${path}.${key}`, (err as Error).message);
  }
}

function integer(raw: Raw, key: string, path: string, fallback: number, min: number): number {
  const value = raw[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min)
    fail(`${path}.${key}`, `expected an integer ≥ ${min}, got ${JSON.stringify(value)}`);
  return value;
}

function boolean(raw: Raw, key: string, path: string, fallback: boolean): boolean {
  const value = raw[key] ?? fallback;
  if (typeof value !== 'boolean') fail(`${path}.${key}`, `expected true or false, got ${JSON.stringify(value)}`);
  return value;
}

function string(raw: Raw, key: string, path: string): string | undefined {
  const value = raw[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') fail(`${path}.${key}`, `expected a non-empty string, got ${JSON.stringify(value)}`);
  return value;
}

const ENTRY_KEYS = [
  'enabled',
  'order',
  'failureMode',
  'mode',
  'exempt',
  'allowLockout',
  'verifyMode',
  'verifyFallback',
  'timeout',
  'sha256',
  'config',
] as const;

/** A list of entity ids, or undefined when the key is absent (`exempt: []` is an explicit "nobody"). */
function entityIds(raw: Raw, key: string, path: string): string[] | undefined {
  const value = raw[key];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((id) => typeof id !== 'string' || id === ''))
    fail(`${path}.${key}`, `expected a list of entity ids (e.g. [root]), got ${JSON.stringify(value)}`);
  return value as string[];
}

function parseEntry(value: unknown, path: string, callTimeoutMs: number): PluginEntry {
  const raw = section(value, path, ENTRY_KEYS);
  const failureMode = raw.failureMode ?? 'closed';
  if (failureMode !== 'closed' && failureMode !== 'open')
    fail(`${path}.failureMode`, `expected "closed" or "open", got ${JSON.stringify(failureMode)}`);
  const mode = raw.mode ?? 'enforce';
  if (mode !== 'enforce' && mode !== 'shadow') fail(`${path}.mode`, `expected "enforce" or "shadow", got ${JSON.stringify(mode)}`);
  const verifyMode = raw.verifyMode;
  if (verifyMode !== undefined && verifyMode !== 'replace' && verifyMode !== 'also')
    fail(`${path}.verifyMode`, `expected "replace" or "also", got ${JSON.stringify(verifyMode)}`);
  const verifyFallback = raw.verifyFallback ?? 'none';
  if (verifyFallback !== 'none' && verifyFallback !== 'builtin')
    fail(`${path}.verifyFallback`, `expected "none" or "builtin", got ${JSON.stringify(verifyFallback)}`);
  const sha256 = string(raw, 'sha256', path)?.toLowerCase();
  if (sha256 !== undefined && !/^[0-9a-f]{64}$/.test(sha256)) fail(`${path}.sha256`, 'expected 64 hex digits (the output of sha256sum)');
  const config = mapping(raw.config, `${path}.config`);
  return {
    enabled: boolean(raw, 'enabled', path, true),
    order: integer(raw, 'order', path, DEFAULT_ORDER, Number.MIN_SAFE_INTEGER),
    failureMode,
    mode,
    exempt: entityIds(raw, 'exempt', path),
    allowLockout: boolean(raw, 'allowLockout', path, false),
    verifyMode,
    verifyFallback,
    timeoutMs: duration(raw, 'timeout', path, callTimeoutMs),
    sha256,
    config: config as JsonObject,
  };
}

const TOP_KEYS = [
  'directory',
  'list',
  'startTimeout',
  'callTimeout',
  'shutdownGrace',
  'pingInterval',
  'restart',
  'plugins',
  'allowUntrustedFiles',
] as const;
const RESTART_KEYS = ['initialDelay', 'maxDelay', 'maxCrashes', 'window', 'resetAfter'] as const;

/** Parses the `plugins:` section of the server YAML (undefined gives every default); throws an Error naming the bad key. */
export function parsePluginSettings(raw: unknown, path = 'plugins'): PluginSettings {
  const top = section(raw, path, TOP_KEYS);
  const restart = section(top.restart, `${path}.restart`, RESTART_KEYS);
  const list = top.list;
  if (list !== undefined && (!Array.isArray(list) || list.some((item) => typeof item !== 'string' || item === ''))) {
    fail(`${path}.list`, 'expected a list of plugin file paths');
  }
  const callTimeoutMs = duration(top, 'callTimeout', path, '2s');
  const entries = mapping(top.plugins, `${path}.plugins`);
  const restartPath = `${path}.restart`;
  return {
    directory: string(top, 'directory', path) ?? 'plugins',
    directoryConfigured: top.directory !== undefined,
    list: list as string[] | undefined,
    startTimeoutMs: duration(top, 'startTimeout', path, '10s'),
    callTimeoutMs,
    shutdownGraceMs: duration(top, 'shutdownGrace', path, '2s'),
    pingIntervalMs: duration(top, 'pingInterval', path, '10s'),
    restart: {
      initialDelayMs: duration(restart, 'initialDelay', restartPath, '100ms'),
      maxDelayMs: duration(restart, 'maxDelay', restartPath, '30s'),
      maxCrashes: integer(restart, 'maxCrashes', restartPath, 5, 1),
      windowMs: duration(restart, 'window', restartPath, '3m'),
      resetAfterMs: duration(restart, 'resetAfter', restartPath, '1m'),
    },
    plugins: Object.fromEntries(
      Object.entries(entries).map(([name, value]) => [name, parseEntry(value, `${path}.plugins.${name}`, callTimeoutMs)]),
    ),
    allowUntrustedFiles: boolean(top, 'allowUntrustedFiles', path, false),
  };
}

/** The settings of the plugin called `name`: its own entry, or the defaults. */
export function pluginEntry(settings: PluginSettings, name: string): PluginEntry {
  return settings.plugins[name] ?? parseEntry(undefined, '', settings.callTimeoutMs);
}
