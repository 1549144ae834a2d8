// Plugin logs: a pino logger whose records travel to the host as `$/log` notifications; the host
// logs them through its own logger with the plugin's name and pid. Until serve() is connected
// (and when a plugin is unit-tested without a host) records go to stderr as JSON lines, which
// the host parses into records as well.
import { pino, type Logger } from 'pino';
import type { JsonObject, LogLevel, LogParams } from './protocol.js';

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

/** A pino logger for plugin code. serve() sets its level to the host's at initialize. */
export function createPluginLogger(level: LogLevel = 'info'): Logger {
  return pino({ level, base: undefined, timestamp: false, formatters: { level: (label) => ({ level: label }) } }, destination);
}
