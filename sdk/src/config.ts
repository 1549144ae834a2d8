// Typed plugin configuration: a plugin declares its settings once (type, default, bounds) and
// gets back typed values from the `config:` object the host sends at initialize, or an error
// naming the key, which the SDK turns into a refused handshake the server log shows verbatim.
import { parseDuration } from './duration.js';
import type { JsonObject, JsonValue } from './protocol.js';

/** One setting: how to turn the raw YAML value into T, and what to use when it is absent. */
export interface ConfigField<T> {
  /** Said in errors and docs, e.g. "an integer ≥ 1". */
  readonly expected: string;
  /** Absent means the setting is required. */
  readonly default?: T;
  /** Returns the typed value, or undefined when the raw value does not fit. */
  parse(raw: JsonValue): T | undefined;
}

export type ConfigSchema = Record<string, ConfigField<unknown>>;
export type ConfigValues<S extends ConfigSchema> = { [K in keyof S]: S[K] extends ConfigField<infer T> ? T : never };

/** A setting the plugin cannot use. `key` names it as written in the server's YAML. */
export class ConfigError extends Error {
  constructor(
    readonly key: string,
    problem: string,
  ) {
    super(`config ${JSON.stringify(key)}: ${problem}`);
    this.name = 'ConfigError';
  }
}

function field<T>(expected: string, parse: (raw: JsonValue) => T | undefined, fallback: T | undefined): ConfigField<T> {
  return fallback === undefined ? { expected, parse } : { expected, parse, default: fallback };
}

interface Bounds {
  min?: number;
  max?: number;
}

function boundsText({ min, max }: Bounds): string {
  if (min !== undefined && max !== undefined) return ` from ${min} to ${max}`;
  if (min !== undefined) return ` ≥ ${min}`;
  return max !== undefined ? ` ≤ ${max}` : '';
}

function inBounds(n: number, { min, max }: Bounds): boolean {
  return (min === undefined || n >= min) && (max === undefined || n <= max);
}

/** The setting constructors; each takes an optional default (no default: the setting is required). */
export const setting = {
  integer(options: Bounds & { default?: number } = {}): ConfigField<number> {
    return field(
      `an integer${boundsText(options)}`,
      (raw) => (typeof raw === 'number' && Number.isInteger(raw) && inBounds(raw, options) ? raw : undefined),
      options.default,
    );
  },
  string(options: { default?: string; oneOf?: readonly string[]; nonEmpty?: boolean } = {}): ConfigField<string> {
    const { oneOf, nonEmpty } = options;
    const expected = oneOf ? `one of ${oneOf.map((s) => JSON.stringify(s)).join(', ')}` : nonEmpty ? 'a non-empty string' : 'a string';
    return field(
      expected,
      (raw) => (typeof raw === 'string' && (!oneOf || oneOf.includes(raw)) && (!nonEmpty || raw !== '') ? raw : undefined),
      options.default,
    );
  },
  boolean(options: { default?: boolean } = {}): ConfigField<boolean> {
    return field('true or false', (raw) => (typeof raw === 'boolean' ? raw : undefined), options.default);
  },
  /** Milliseconds, written as a number of ms or a string like "15m" (see parseDuration). */
  duration(options: Bounds & { default?: number | string } = {}): ConfigField<number> {
    const parse = (raw: JsonValue): number | undefined => {
      try {
        const ms = parseDuration(raw);
        return inBounds(ms, options) ? ms : undefined;
      } catch {
        return undefined;
      }
    };
    const fallback = options.default === undefined ? undefined : parseDuration(options.default);
    return field(`a duration such as 1500, "2s" or "15m"${boundsText(options)}`, parse, fallback);
  },
  stringList<T extends string = string>(options: { default?: NoInfer<T>[]; oneOf?: readonly T[] } = {}): ConfigField<T[]> {
    const { oneOf } = options;
    const fits = (s: JsonValue): s is T => typeof s === 'string' && (!oneOf || oneOf.includes(s as T));
    const expected = oneOf ? `a list of names from ${oneOf.join(', ')}` : 'a list of strings';
    return field(expected, (raw) => (Array.isArray(raw) && raw.every(fits) ? raw : undefined), options.default);
  },
  /** Any JSON object, passed through as is (e.g. settings forwarded to another service). */
  object(options: { default?: JsonObject } = {}): ConfigField<JsonObject> {
    return field('an object', (raw) => (raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? raw : undefined), options.default);
  },
};

/**
 * Reads `raw` against `schema`: every key typed, defaults filled in. Throws ConfigError for a
 * missing required setting, a value of the wrong kind, or a key the schema does not know (a typo
 * such as `allowed_fails` would otherwise be silently ignored).
 */
export function readConfig<S extends ConfigSchema>(schema: S, raw: JsonObject): ConfigValues<S> {
  for (const key of Object.keys(raw)) {
    if (!Object.hasOwn(schema, key))
      throw new ConfigError(key, `unknown setting; this plugin knows ${Object.keys(schema).join(', ') || 'none'}`);
  }
  const values: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(schema)) {
    const value = raw[key];
    if (value === undefined || value === null) {
      if (spec.default === undefined) throw new ConfigError(key, `is required: set it to ${spec.expected}`);
      values[key] = spec.default;
      continue;
    }
    const parsed = spec.parse(value);
    if (parsed === undefined) throw new ConfigError(key, `expected ${spec.expected}, got ${JSON.stringify(value)}`);
    values[key] = parsed;
  }
  return values as ConfigValues<S>;
}
