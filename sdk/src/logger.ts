// Plugin logs: structured records that travel to the host as `$/log` notifications; the host logs
// them through its own logger with the plugin's name and pid. Until serve() is connected (and when
// a plugin is unit-tested without a host) records go to stderr as JSON lines, which the host parses
// into records as well. The calls follow pino's convention, `logger.warn({ fields }, 'message')`;
// it is not pino itself because importing pino took about half of a plugin's start-up time.
import type { JsonObject, LogLevel, LogParams } from './protocol.js';

const LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

let sendToHost: ((record: LogParams) => void) | undefined;

/** serve() routes every plugin logger's records to the host once the connection is up. */
export function routeLogsToHost(send: ((record: LogParams) => void) | undefined): void {
  sendToHost = send;
}

/** `(message)`, `(fields, message?)` or `(error, message?)`: an Error is logged as `err` and is the default message. */
export interface LogMethod {
  (msg: string): void;
  (fields: object, msg?: string): void;
}

export interface PluginLogger {
  /** The lowest level written; serve() sets it to the host's at initialize. */
  level: LogLevel;
  trace: LogMethod;
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
  fatal: LogMethod;
  /** A logger adding `bindings` to each record; it shares this logger's level. */
  child(bindings: object): PluginLogger;
}

/** Errors as { type, message, stack } (what pino's serializer makes of them); the rest as JSON. */
function jsonFields(fields: object): JsonObject {
  try {
    const json = JSON.stringify(fields, (_key, value: unknown) => (value instanceof Error ? { type: value.name, message: value.message, stack: value.stack } : value));
    return json === undefined ? {} : (JSON.parse(json) as JsonObject);
  } catch (err) {
    // A cycle or a BigInt: the record still goes out, saying why its fields did not.
    return { fieldsDropped: `the fields could not be written as JSON: ${(err as Error).message}` };
  }
}

function write(level: LogLevel, bindings: object, first: string | object, msg: string | undefined): void {
  const given = typeof first === 'string' ? {} : first instanceof Error ? { err: first } : first;
  const text = typeof first === 'string' ? first : (msg ?? (first instanceof Error ? first.message : ''));
  const fields = jsonFields({ ...bindings, ...given });
  if (sendToHost) sendToHost({ level, msg: text, fields });
  else process.stderr.write(`${JSON.stringify({ level, msg: text, ...fields })}\n`);
}

class Logger implements PluginLogger {
  declare trace: LogMethod;
  declare debug: LogMethod;
  declare info: LogMethod;
  declare warn: LogMethod;
  declare error: LogMethod;
  declare fatal: LogMethod;

  constructor(
    private readonly threshold: { level: LogLevel },
    private readonly bindings: object,
  ) {
    for (const level of LEVELS) {
      const rank = LEVELS.indexOf(level);
      this[level] = (first: string | object, msg?: string) => {
        if (rank >= LEVELS.indexOf(this.threshold.level)) write(level, this.bindings, first, msg);
      };
    }
  }

  get level(): LogLevel {
    return this.threshold.level;
  }

  set level(level: LogLevel) {
    if (!LEVELS.includes(level)) throw new Error(`unknown log level ${JSON.stringify(level)}: expected one of ${LEVELS.join(', ')}`);
    this.threshold.level = level;
  }

  child(bindings: object): PluginLogger {
    return new Logger(this.threshold, { ...this.bindings, ...bindings });
  }
}

/** A logger for plugin code, at `level` until serve() sets the host's. */
export function createPluginLogger(level: LogLevel = 'info'): PluginLogger {
  return new Logger({ level }, {});
}
