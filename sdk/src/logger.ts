// Plugin logs: pino records that travel to the host as `$/log` notifications; the host logs them
// through its own logger with the plugin's name and pid. Until serve() is connected (and when a
// plugin is unit-tested without a host) records go to stderr as JSON lines, which the host parses
// into records as well. pino is loaded with the first record written, not at start: loading it
// was about a fifth of a plugin's start-up time and memory, and many plugins log rarely.
import type { Logger, pino as createPino } from 'pino';
import { requireDependency } from './dependency.js';
import type { JsonObject, LogLevel, LogParams } from './protocol.js';

const LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

let sendToHost: ((record: LogParams) => void) | undefined;

/** serve() routes every plugin logger's records to the host once the connection is up. */
export function routeLogsToHost(send: ((record: LogParams) => void) | undefined): void {
  sendToHost = send;
}

const destination = {
  write(line: string): void {
    if (!sendToHost) {
      process.stderr.write(line);
      return;
    }
    const { level, msg, ...fields } = JSON.parse(line) as { level: LogLevel; msg?: string } & JsonObject;
    sendToHost({ level, msg: msg ?? '', fields });
  },
};

function createPinoLogger(level: LogLevel): Logger {
  const { pino } = requireDependency('pino') as { pino: typeof createPino };
  return pino({ level, base: undefined, timestamp: false, formatters: { level: (label) => ({ level: label }) } }, destination);
}

/** pino's calling convention: `(message)`, `(fields, message?)`, or `(error, message?)`, which logs the error as `err`. */
export interface LogMethod {
  (msg: string, ...args: unknown[]): void;
  (fields: object, msg?: string, ...args: unknown[]): void;
}

/** The plugin logger: pino's methods and level; `child(bindings)` adds fields to each record. */
export interface PluginLogger {
  /** The lowest level written; serve() sets it to the host's at initialize. */
  level: LogLevel;
  trace: LogMethod;
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
  fatal: LogMethod;
  /** A logger adding `bindings` to each record, starting at this logger's level. */
  child(bindings: object): PluginLogger;
}

/** Stands in for a pino logger until the first record at or above its level, then passes everything to it. */
class LazyLogger implements PluginLogger {
  declare trace: LogMethod;
  declare debug: LogMethod;
  declare info: LogMethod;
  declare warn: LogMethod;
  declare error: LogMethod;
  declare fatal: LogMethod;
  private logger: Logger | undefined;

  constructor(
    private currentLevel: LogLevel,
    private readonly make: (level: LogLevel) => Logger,
  ) {
    for (const level of LEVELS) {
      const rank = LEVELS.indexOf(level);
      this[level] = (...args: unknown[]) => {
        if (rank < LEVELS.indexOf(this.currentLevel)) return;
        this.logger ??= this.make(this.currentLevel);
        (this.logger[level] as (...a: unknown[]) => void)(...args);
      };
    }
  }

  get level(): LogLevel {
    return this.currentLevel;
  }

  set level(level: LogLevel) {
    if (!LEVELS.includes(level)) throw new Error(`unknown log level ${JSON.stringify(level)}: expected one of ${LEVELS.join(', ')}`);
    this.currentLevel = level;
    if (this.logger) this.logger.level = level;
  }

  child(bindings: object): PluginLogger {
    return new LazyLogger(this.currentLevel, (level) => {
      this.logger ??= this.make(this.currentLevel);
      return this.logger.child(bindings, { level });
    });
  }
}

/** A logger for plugin code, at `level` until serve() sets the host's. */
export function createPluginLogger(level: LogLevel = 'info'): PluginLogger {
  return new LazyLogger(level, createPinoLogger);
}
