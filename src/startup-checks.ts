// The checks a start makes before anything with a lasting effect (creating the store, printing a
// generated root secret, starting plugins): the listen address is free and the data directory can
// be made. A failure is a ConfigError naming the setting to change, so `keyhold serve` exits 2.
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { ConfigError, type KeyholdConfig } from './config.js';

const LISTEN_SETTING = 'listen (KEYHOLD_LISTEN, or KEYHOLD_HOST and KEYHOLD_PORT)';
const DATA_DIR_SETTING = 'dataDir (KEYHOLD_DATA_DIR)';

function sourceOf(config: KeyholdConfig): string {
  return config.file ?? 'settings';
}

/** A listen failure (EADDRINUSE, EACCES, EADDRNOTAVAIL) as a ConfigError that says what to change; anything else as it is. */
export function listenError(err: unknown, config: KeyholdConfig): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  const address = `${config.listen.host}:${config.listen.port}`;
  const problems: Record<string, string> = {
    EADDRINUSE: `${address} is already in use (another keyhold server?); stop that program or choose another port`,
    EACCES: `not allowed to listen on ${address} (ports below 1024 need privileges); choose a port from 1024 up`,
    EADDRNOTAVAIL: `${config.listen.host} is not an address of this machine; use one it has, e.g. 127.0.0.1`,
  };
  const problem = code === undefined ? undefined : problems[code];
  return problem ? new ConfigError(sourceOf(config), LISTEN_SETTING, problem) : err;
}

/** Binds the listen address once and lets it go: a port in use is found before the store or a root secret is made. */
export async function checkListenAddress(config: KeyholdConfig): Promise<void> {
  // Port 0 takes whatever is free: nothing to check.
  if (config.listen.port === 0) return;
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', (err) => reject(listenError(err, config)));
    probe.listen({ host: config.listen.host, port: config.listen.port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

/** Creates the data directory (owner-only) or says which setting to change and why it cannot be. */
export function makeDataDir(config: KeyholdConfig): void {
  try {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const problems: Record<string, string> = {
      EACCES: `cannot create or enter ${config.dataDir}: permission denied; choose a directory the server's user may write, or fix its owner`,
      EEXIST: `${config.dataDir} exists and is not a directory; choose another path`,
      ENOTDIR: `a part of ${config.dataDir} is a file, not a directory; choose another path`,
      EROFS: `${config.dataDir} is on a read-only file system; choose a writable directory`,
    };
    const problem = code === undefined ? undefined : problems[code];
    throw problem ? new ConfigError(sourceOf(config), DATA_DIR_SETTING, problem) : err;
  }
}
