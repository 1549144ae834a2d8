// The server's logger: pino, JSON lines (one record per line, for collectors) unless stdout is a
// terminal, where pino-pretty makes it readable. Secrets are redacted wherever they appear in a
// record (request bodies, headers, error details), so no code path has to remember to strip them.
import { hostname } from 'node:os';
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from './config.js';

/** Every place a secret or credential can sit in a log record. */
const REDACT_PATHS = [
  'secret',
  'oldSecret',
  'newSecret',
  'token',
  '*.secret',
  '*.oldSecret',
  '*.newSecret',
  '*.token',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'body.secret',
  'body.oldSecret',
  'body.newSecret',
];

export interface LoggerOptions {
  level: LogLevel;
  /** Where records go; defaults to stdout (pretty when it is a terminal). */
  destination?: DestinationStream;
}

export function createLogger({ level, destination }: LoggerOptions): Logger {
  // No `pid` in the base: plugin records carry the plugin's pid under that key, and a record must not hold it twice.
  const options = { level, base: { hostname: hostname() }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  if (destination) return pino(options, destination);
  if (process.stdout.isTTY)
    return pino({ ...options, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } });
  return pino(options);
}

export type { Logger };
