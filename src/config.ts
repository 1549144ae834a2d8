// The server's settings: keyhold.yaml (optional) overlaid by KEYHOLD_* environment variables,
// every setting defaulted so that a fresh checkout starts with no configuration at all.
// A setting that does not fit stops the server at start with where it came from (file or
// variable), its key path and what is wrong; unknown keys too, so a typo is never ignored.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseDuration } from 'keyhold-plugin-sdk';
import YAML from 'yaml';
import type { OutboxSettings } from './events/settings.js';
import { parseClientAddressHeader, parseTrustedProxies, type ClientAddressSettings } from './api/client-address.js';
import { parseHeaderName, parseRealm, parseRules, type ForwardAuthSettings } from './api/forward-auth-settings.js';
import { parsePluginSettings, type PluginSettings } from './host/settings.js';
import { DEFAULT_HASH_SLOTS, type HashSlotSettings } from './identity/hash-slots.js';
import { DEFAULT_LOGIN_THROTTLE, type LoginThrottleSettings } from './identity/login-throttle.js';
import { DEFAULT_HASH_PARAMS, type HashParams } from './identity/secrets.js';
import { checkDatabaseUrl } from './store/postgres/database-url.js';
import { didYouMean } from './suggest.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface KeyholdConfig {
  /** The file the settings were read from, or null when none was used. */
  file: string | null;
  listen: { host: string; port: number };
  /** PEM file paths; null when TLS is off. */
  tls: { cert: string; key: string } | null;
  /** Allows a non-loopback listen address without TLS. */
  insecure: boolean;
  dataDir: string;
  tokenTtlMs: number;
  logLevel: LogLevel;
  hash: HashParams;
  /** The bound on concurrent argon2 work (`hash.concurrency`, `hash.queue`). */
  hashSlots: HashSlotSettings;
  loginThrottle: LoginThrottleSettings;
  bodyLimitBytes: number;
  /** How long a write waits for a lock another process holds on the database before KH_ERR_STORE_BUSY. */
  storeBusyTimeoutMs: number;
  /** Which store holds the data: the SQLite file in dataDir, or a PostgreSQL database (`source`: where its URL was set, for messages). */
  store: { kind: 'sqlite' } | { kind: 'postgres'; url: string; source: string };
  /** The `plugins:` section, parsed by the plugin host's own rules. */
  plugins: PluginSettings;
  /** The committed-event outbox: retention and delivery retries. */
  events: OutboxSettings;
  /** Which reverse proxies' forwarded client address every route believes. */
  api: ClientAddressSettings;
  /** /v1/forward-auth: identity headers, named rules, the credentials cache. */
  forwardAuth: ForwardAuthSettings;
}

export const DEFAULT_CONFIG_FILE = 'keyhold.yaml';

/** A setting the server cannot use. `source` is the file or the environment variable it came from. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${source}: ${path}: ${problem}`);
    this.name = 'ConfigError';
  }
}

/** How one setting is read: its environment variable, its default and how to check a raw value. */
interface Setting {
  env?: string;
  default: unknown;
  /** Returns the typed value or throws an Error saying what is expected. */
  parse(raw: unknown): unknown;
  /** Turns the environment variable's text into a raw value (default: the text itself). */
  fromEnv?(text: string): unknown;
}

type SettingsTree = { [key: string]: Setting | SettingsTree };

function isSetting(node: Setting | SettingsTree): node is Setting {
  return typeof (node as Setting).parse === 'function';
}

function describe(raw: unknown): string {
  return raw === null ? 'null' : Array.isArray(raw) ? 'a list' : typeof raw === 'object' ? 'a mapping' : JSON.stringify(raw);
}

function str(raw: unknown): string {
  if (typeof raw !== 'string') throw new Error(`expected a string, got ${describe(raw)}`);
  return raw;
}

function integer(min: number, max: number): (raw: unknown) => number {
  return (raw) => {
    if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < min || raw > max)
      throw new Error(`expected an integer from ${min} to ${max}, got ${describe(raw)}`);
    return raw;
  };
}

function bool(raw: unknown): boolean {
  if (typeof raw !== 'boolean') throw new Error(`expected true or false, got ${describe(raw)}`);
  return raw;
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1024, mb: 1024 * 1024 };

/** A byte count: a number, or a string such as "64kb" or "1mb". */
function size(raw: unknown): number {
  const m = typeof raw === 'string' ? /^\s*(\d+)\s*(b|kb|mb)?\s*$/i.exec(raw) : null;
  const bytes = typeof raw === 'number' ? raw : m ? Number(m[1]) * SIZE_UNITS[(m[2] ?? '').toLowerCase()]! : NaN;
  if (!Number.isInteger(bytes) || bytes < 1024 || bytes > 64 * 1024 * 1024)
    throw new Error(`expected a size from 1kb to 64mb (a number of bytes, or like "64kb", "1mb"), got ${describe(raw)}`);
  return bytes;
}

/** A duration from `min` to `max` (both written as in the message, e.g. "1s", "24h"). */
function duration(min: string, max: string): (raw: unknown) => number {
  const [low, high] = [parseDuration(min), parseDuration(max)];
  return (raw) => {
    const ms = parseDuration(raw);
    if (ms < low || ms > high) throw new Error(`expected a duration from ${min} to ${max}, got ${describe(raw)}`);
    return ms;
  };
}

const STORE_KINDS = ['sqlite', 'postgres'] as const;

function storeKind(raw: unknown): string {
  // '' (the default): postgres when a URL is set, else sqlite.
  if (raw !== '' && !(STORE_KINDS as readonly unknown[]).includes(raw))
    throw new Error(`expected one of ${STORE_KINDS.join(', ')}, got ${describe(raw)}`);
  return raw as string;
}

/** A database URL; the message never repeats the value (it may hold a password). */
function databaseUrl(raw: unknown): string {
  if (typeof raw !== 'string')
    throw new Error(
      `expected a string (a postgres:// URL), got ${Array.isArray(raw) ? 'a list' : typeof raw === 'object' ? 'a mapping' : typeof raw}`,
    );
  return raw === '' ? raw : checkDatabaseUrl(raw);
}

function logLevel(raw: unknown): LogLevel {
  if (typeof raw !== 'string' || !(LOG_LEVELS as readonly string[]).includes(raw))
    throw new Error(`expected one of ${LOG_LEVELS.join(', ')}, got ${describe(raw)}`);
  return raw as LogLevel;
}

const asNumber = (text: string): unknown => (/^\s*-?\d+\s*$/.test(text) ? Number(text) : text);
const asBoolean = (text: string): unknown => (text === 'true' || text === '1' ? true : text === 'false' || text === '0' ? false : text);

/** Every setting but `plugins`, which belongs to the plugin host. Defaults follow docs/configuration.md. */
const SETTINGS: SettingsTree = {
  listen: {
    host: { env: 'KEYHOLD_HOST', default: '127.0.0.1', parse: str },
    port: { env: 'KEYHOLD_PORT', default: 8470, parse: integer(0, 65535), fromEnv: asNumber },
  },
  tls: {
    cert: { env: 'KEYHOLD_TLS_CERT', default: '', parse: str },
    key: { env: 'KEYHOLD_TLS_KEY', default: '', parse: str },
  },
  insecure: { env: 'KEYHOLD_INSECURE', default: false, parse: bool, fromEnv: asBoolean },
  dataDir: { env: 'KEYHOLD_DATA_DIR', default: './data', parse: str },
  tokenTtl: { env: 'KEYHOLD_TOKEN_TTL', default: '10m', parse: duration('1s', '24h'), fromEnv: asNumber },
  logLevel: { env: 'KEYHOLD_LOG_LEVEL', default: 'info', parse: logLevel },
  hash: {
    memoryCost: {
      env: 'KEYHOLD_HASH_MEMORY_COST',
      default: DEFAULT_HASH_PARAMS.memoryCost,
      parse: integer(8, 4 * 1024 * 1024),
      fromEnv: asNumber,
    },
    timeCost: { env: 'KEYHOLD_HASH_TIME_COST', default: DEFAULT_HASH_PARAMS.timeCost, parse: integer(1, 100), fromEnv: asNumber },
    parallelism: { env: 'KEYHOLD_HASH_PARALLELISM', default: DEFAULT_HASH_PARAMS.parallelism, parse: integer(1, 64), fromEnv: asNumber },
    concurrency: { env: 'KEYHOLD_HASH_CONCURRENCY', default: DEFAULT_HASH_SLOTS.concurrency, parse: integer(1, 256), fromEnv: asNumber },
    queue: { env: 'KEYHOLD_HASH_QUEUE', default: DEFAULT_HASH_SLOTS.queue, parse: integer(0, 100_000), fromEnv: asNumber },
  },
  loginThrottle: {
    enabled: { env: 'KEYHOLD_LOGIN_THROTTLE', default: DEFAULT_LOGIN_THROTTLE.enabled, parse: bool, fromEnv: asBoolean },
    baseDelay: {
      env: 'KEYHOLD_LOGIN_THROTTLE_BASE_DELAY',
      default: DEFAULT_LOGIN_THROTTLE.baseDelayMs,
      parse: duration('0ms', '60s'),
      fromEnv: asNumber,
    },
    softLockAfter: { default: DEFAULT_LOGIN_THROTTLE.softLockAfter, parse: integer(1, 1_000_000) },
    softLockDuration: { default: DEFAULT_LOGIN_THROTTLE.softLockMs, parse: duration('1s', '30d') },
    forgetAfter: { default: DEFAULT_LOGIN_THROTTLE.forgetAfterMs, parse: duration('1s', '30d') },
    familiarFor: { default: DEFAULT_LOGIN_THROTTLE.familiarForMs, parse: duration('1m', '365d') },
  },
  bodyLimit: { env: 'KEYHOLD_BODY_LIMIT', default: '64kb', parse: size, fromEnv: asNumber },
  events: {
    retention: { env: 'KEYHOLD_EVENTS_RETENTION', default: '7d', parse: duration('1m', '366d'), fromEnv: asNumber },
    maxAttempts: { env: 'KEYHOLD_EVENTS_MAX_ATTEMPTS', default: 10, parse: integer(1, 1000), fromEnv: asNumber },
    retryInitialDelay: { env: 'KEYHOLD_EVENTS_RETRY_INITIAL_DELAY', default: '100ms', parse: duration('1ms', '1h'), fromEnv: asNumber },
    retryMaxDelay: { env: 'KEYHOLD_EVENTS_RETRY_MAX_DELAY', default: '30s', parse: duration('1ms', '1h'), fromEnv: asNumber },
    leaseTtl: { env: 'KEYHOLD_EVENTS_LEASE_TTL', default: '10s', parse: duration('1s', '10m'), fromEnv: asNumber },
    leaseRenew: { env: 'KEYHOLD_EVENTS_LEASE_RENEW', default: '3s', parse: duration('100ms', '5m'), fromEnv: asNumber },
  },
  storeBusyTimeout: { env: 'KEYHOLD_STORE_BUSY_TIMEOUT', default: '5s', parse: duration('100ms', '60s'), fromEnv: asNumber },
  api: {
    trustedProxies: { env: 'KEYHOLD_TRUSTED_PROXIES', default: [], parse: parseTrustedProxies },
    clientAddressHeader: { env: 'KEYHOLD_CLIENT_ADDRESS_HEADER', default: 'x-forwarded-for', parse: parseClientAddressHeader },
  },
  store: {
    kind: { env: 'KEYHOLD_STORE', default: '', parse: storeKind },
    url: { env: 'KEYHOLD_DATABASE_URL', default: '', parse: databaseUrl },
  },
  forwardAuth: {
    realm: { env: 'KEYHOLD_FORWARD_AUTH_REALM', default: 'keyhold', parse: parseRealm },
    headers: {
      entity: { default: 'X-Keyhold-Entity', parse: parseHeaderName },
      groups: { default: 'X-Keyhold-Groups', parse: parseHeaderName },
      capabilities: { default: 'X-Keyhold-Capabilities', parse: parseHeaderName },
    },
    rules: { default: {}, parse: parseRules },
    cache: {
      ttl: { env: 'KEYHOLD_FORWARD_AUTH_CACHE_TTL', default: '30s', parse: duration('0ms', '10m'), fromEnv: asNumber },
      maxEntries: { env: 'KEYHOLD_FORWARD_AUTH_CACHE_MAX_ENTRIES', default: 10_000, parse: integer(1, 1_000_000), fromEnv: asNumber },
    },
  },
};

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The top-level keys: the settings read here, and `plugins`, which the plugin host reads. */
const TOP_LEVEL_KEYS = [...Object.keys(SETTINGS), 'plugins'];

/** Settings that moved (forward auth's trusted proxies now apply to every route): the old name is refused, saying the new one. */
const MOVED: Record<string, string> = {
  'forwardAuth.trustedProxies': 'api.trustedProxies',
  'forwardAuth.clientAddressHeader': 'api.clientAddressHeader',
  KEYHOLD_FORWARD_AUTH_TRUSTED_PROXIES: 'KEYHOLD_TRUSTED_PROXIES',
  KEYHOLD_FORWARD_AUTH_CLIENT_ADDRESS_HEADER: 'KEYHOLD_CLIENT_ADDRESS_HEADER',
};

function movedProblem(old: string): string {
  return `moved to ${MOVED[old]}: one list of trusted proxies now applies to every route (the API, its logins and forward auth); see docs/configuration.md`;
}

/** Reads one level of the tree: unknown keys refused, each setting from env, file or default. */
function readTree(tree: SettingsTree, raw: unknown, path: string, file: string, env: NodeJS.ProcessEnv): Record<string, unknown> {
  if (raw !== undefined && raw !== null && !isMapping(raw)) throw new ConfigError(file, path, `expected a mapping, got ${describe(raw)}`);
  const given = raw ?? {};
  const known = path === '' ? TOP_LEVEL_KEYS : Object.keys(tree);
  for (const key of Object.keys(given)) {
    const here = path ? `${path}.${key}` : key;
    if (Object.hasOwn(MOVED, here)) throw new ConfigError(file, here, movedProblem(here));
    if (!Object.hasOwn(tree, key))
      throw new ConfigError(
        file,
        path ? `${path}.${key}` : key,
        `unknown key${didYouMean(key, known)}; expected one of ${known.join(', ')}`,
      );
  }
  const out: Record<string, unknown> = {};
  for (const [key, node] of Object.entries(tree)) {
    const here = path ? `${path}.${key}` : key;
    if (!isSetting(node)) {
      out[key] = readTree(node, given[key], here, file, env);
      continue;
    }
    const text = node.env === undefined ? undefined : env[node.env];
    const [source, value] =
      text !== undefined && text !== ''
        ? [node.env!, (node.fromEnv ?? ((t: string) => t))(text)]
        : given[key] !== undefined && given[key] !== null
          ? [file, given[key]]
          : ['default', node.default];
    try {
      out[key] = node.parse(value);
    } catch (err) {
      throw new ConfigError(source, here, (err as Error).message);
    }
  }
  return out;
}

/** KEYHOLD_LISTEN=host:port sets both listen settings at once (KEYHOLD_HOST/KEYHOLD_PORT win over it). */
function splitListen(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const listen = env.KEYHOLD_LISTEN;
  if (!listen) return env;
  const m = /^(\[[^\]]+\]|[^:]*):(\d+)$/.exec(listen);
  if (!m) throw new ConfigError('KEYHOLD_LISTEN', 'listen', `expected host:port (e.g. 127.0.0.1:8470), got ${JSON.stringify(listen)}`);
  return { KEYHOLD_HOST: m[1]!.replace(/^\[|\]$/g, '') || undefined, KEYHOLD_PORT: m[2], ...stripEmpty(env) };
}

function stripEmpty(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
}

export interface LoadConfigOptions {
  /** An explicit file (from --config); it must exist. */
  file?: string;
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Where relative paths (default file, dataDir) are resolved from; defaults to the working directory. */
  cwd?: string;
}

/**
 * Loads the settings: `options.file`, else KEYHOLD_CONFIG, else ./keyhold.yaml when it exists,
 * else defaults only; then KEYHOLD_* variables override. Throws ConfigError.
 */
export function loadConfig(options: LoadConfigOptions = {}): KeyholdConfig {
  const env = splitListen(options.env ?? process.env);
  for (const name of Object.keys(MOVED))
    if (name.startsWith('KEYHOLD_') && env[name]) throw new ConfigError(name, name, movedProblem(name));
  const cwd = options.cwd ?? process.cwd();
  const explicit = options.file ?? env.KEYHOLD_CONFIG;
  const file =
    explicit !== undefined && explicit !== ''
      ? resolve(cwd, explicit)
      : existsSync(resolve(cwd, DEFAULT_CONFIG_FILE))
        ? resolve(cwd, DEFAULT_CONFIG_FILE)
        : null;
  let raw: unknown = undefined;
  if (file !== null) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const given = options.file !== undefined ? '--config' : 'KEYHOLD_CONFIG';
      const problem =
        code === 'ENOENT'
          ? `no such file; check the path given to ${given}`
          : code === 'EACCES'
            ? "permission denied; the server's user must be able to read it"
            : code === 'EISDIR'
              ? 'it is a directory; name the settings file in it'
              : `cannot read it: ${code ?? (err as Error).message}`;
      throw new ConfigError(file, '(file)', problem);
    }
    const doc = YAML.parseDocument(text, { uniqueKeys: true });
    if (doc.errors.length > 0) {
      const first = doc.errors[0]!;
      const line = first.linePos?.[0];
      // The parser's first line ends in "at line L, column C:", which the source already says.
      const message = first.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      throw new ConfigError(line ? `${file}:${line.line}:${line.col}` : file, '(file)', `not valid YAML: ${message}`);
    }
    raw = doc.toJS();
  }
  const source = file ?? 'defaults';
  if (raw !== undefined && raw !== null && !isMapping(raw))
    throw new ConfigError(source, '(top level)', `expected a mapping of settings, got ${describe(raw)}`);
  const { plugins, ...rest } = (raw ?? {}) as Record<string, unknown>;
  const values = readTree(SETTINGS, rest, '', source, env) as {
    listen: KeyholdConfig['listen'];
    tls: { cert: string; key: string };
    insecure: boolean;
    dataDir: string;
    tokenTtl: number;
    logLevel: LogLevel;
    hash: KeyholdConfig['hash'] & HashSlotSettings;
    loginThrottle: {
      enabled: boolean;
      baseDelay: number;
      softLockAfter: number;
      softLockDuration: number;
      forgetAfter: number;
      familiarFor: number;
    };
    bodyLimit: number;
    events: {
      retention: number;
      maxAttempts: number;
      retryInitialDelay: number;
      retryMaxDelay: number;
      leaseTtl: number;
      leaseRenew: number;
    };
    storeBusyTimeout: number;
    api: ClientAddressSettings;
    store: { kind: '' | (typeof STORE_KINDS)[number]; url: string };
    forwardAuth: Omit<ForwardAuthSettings, 'cache'> & { cache: { ttl: number; maxEntries: number } };
  };
  const { concurrency, queue, ...hash } = values.hash;
  const throttle = values.loginThrottle;
  if ((values.tls.cert === '') !== (values.tls.key === ''))
    throw new ConfigError(file ?? 'environment', 'tls', 'set both cert and key, or neither');
  const { events, forwardAuth } = values;
  if (events.retryMaxDelay < events.retryInitialDelay)
    throw new ConfigError(
      file ?? 'environment',
      'events.retryMaxDelay',
      `must not be shorter than events.retryInitialDelay (${events.retryInitialDelay} ms)`,
    );
  // A holder stops delivering one renewal interval before its lease runs out: at most half of it, or it would never deliver.
  if (events.leaseRenew * 2 > events.leaseTtl)
    throw new ConfigError(
      file ?? 'environment',
      'events.leaseRenew',
      `must be at most half of events.leaseTtl (${events.leaseTtl} ms), so a renewal comes well before the lease runs out`,
    );
  const urlSource = env.KEYHOLD_DATABASE_URL ? 'KEYHOLD_DATABASE_URL' : source;
  const storeKindUsed = values.store.kind || (values.store.url === '' ? 'sqlite' : 'postgres');
  if (storeKindUsed === 'postgres' && values.store.url === '')
    throw new ConfigError(
      env.KEYHOLD_STORE ? 'KEYHOLD_STORE' : source,
      'store.url',
      'store.kind is postgres but no database URL is set; set store.url (or KEYHOLD_DATABASE_URL) to postgres://user:password@host:5432/database',
    );
  if (storeKindUsed === 'sqlite' && values.store.url !== '')
    throw new ConfigError(
      urlSource,
      'store.url',
      'a database URL is set but store.kind is sqlite, which keeps its data in dataDir; set store.kind to postgres, or remove the URL',
    );
  let pluginSettings: PluginSettings;
  try {
    pluginSettings = parsePluginSettings(plugins);
  } catch (err) {
    // The host's message starts with the key path: "plugins.x.y: what is wrong".
    const message = (err as Error).message;
    const at = message.indexOf(': ');
    throw at > 0 ? new ConfigError(source, message.slice(0, at), message.slice(at + 2)) : new ConfigError(source, 'plugins', message);
  }
  return {
    file,
    listen: values.listen,
    tls: values.tls.cert === '' ? null : { cert: resolve(cwd, values.tls.cert), key: resolve(cwd, values.tls.key) },
    insecure: values.insecure,
    dataDir: resolve(cwd, values.dataDir),
    tokenTtlMs: values.tokenTtl,
    logLevel: values.logLevel,
    hash,
    hashSlots: { concurrency, queue },
    loginThrottle: {
      enabled: throttle.enabled,
      baseDelayMs: throttle.baseDelay,
      softLockAfter: throttle.softLockAfter,
      softLockMs: throttle.softLockDuration,
      forgetAfterMs: throttle.forgetAfter,
      familiarForMs: throttle.familiarFor,
    },
    bodyLimitBytes: values.bodyLimit,
    events: {
      retentionMs: events.retention,
      maxAttempts: events.maxAttempts,
      retryInitialDelayMs: events.retryInitialDelay,
      retryMaxDelayMs: events.retryMaxDelay,
      leaseTtlMs: events.leaseTtl,
      leaseRenewMs: events.leaseRenew,
    },
    storeBusyTimeoutMs: values.storeBusyTimeout,
    api: values.api,
    store: storeKindUsed === 'postgres' ? { kind: 'postgres', url: values.store.url, source: urlSource } : { kind: 'sqlite' },
    forwardAuth: { ...forwardAuth, cache: { ttlMs: forwardAuth.cache.ttl, maxEntries: forwardAuth.cache.maxEntries } },
    plugins: {
      ...pluginSettings,
      directory: resolve(cwd, env.KEYHOLD_PLUGIN_DIR || pluginSettings.directory),
      directoryConfigured: pluginSettings.directoryConfigured || Boolean(env.KEYHOLD_PLUGIN_DIR),
      list: pluginSettings.list?.map((f) => resolve(cwd, f)),
    },
  };
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The safe default: a listen address beyond loopback needs TLS, or an explicit `insecure: true`.
 * Returns a warning to log loudly when the operator chose insecure; throws ConfigError otherwise.
 */
export function checkListenSafety(config: KeyholdConfig): string | null {
  if (isLoopback(config.listen.host) || config.tls !== null) return null;
  if (!config.insecure) {
    throw new ConfigError(
      config.file ?? 'environment',
      'listen.host',
      `${config.listen.host} is reachable from other machines, so it needs tls.cert and tls.key; set insecure: true (KEYHOLD_INSECURE=true) to serve plain HTTP anyway`,
    );
  }
  return `INSECURE: serving plain HTTP on ${config.listen.host}, reachable from other machines; secrets and tokens cross the network unencrypted. Configure tls.cert and tls.key.`;
}
