// Opens the store the settings name: the SQLite file in the data directory (the default; the
// directory's lock keeps a second server off it), or a PostgreSQL database shared by several
// servers (no data directory lock: the database serialises their writes). A database that cannot
// be used stops the start with what failed, where the URL was set and what to do, its password hidden.
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, type KeyholdConfig } from '../config.js';
import { lockDataDir } from '../data-dir-lock.js';
import { redactUrl } from './postgres/database-url.js';
import { PostgresStore } from './postgres/postgres-store.js';
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './store.js';

export const DATABASE_FILE = 'keyhold.sqlite';

export interface OpenedStore {
  store: Store;
  /** Closes the store, then lets go of what it held (the data directory's lock). */
  close(): Promise<void>;
}

/** What a failure to connect or migrate means, for the person starting the server. */
function postgresProblem(err: unknown, url: string): string {
  const code = (err as { code?: string }).code;
  const where = redactUrl(url);
  const reason = (err as Error).message || String(err);
  const advice =
    code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'ETIMEDOUT' || /timeout/i.test(reason)
      ? 'check that PostgreSQL runs there and accepts TCP connections from this machine'
      : code === '28P01' || code === '28000'
        ? 'check the user name and password in the URL, and pg_hba.conf on the database server'
        : code === '3D000'
          ? 'create the database first (createdb), or name an existing one in the URL'
          : code === '42501'
            ? "the URL's user needs the right to create tables in the database (it runs the migrations)"
            : 'check the URL and the database server log';
  return `cannot use the PostgreSQL database at ${where}: ${reason}; ${advice}`;
}

export async function openStore(config: KeyholdConfig, logger: Logger): Promise<OpenedStore> {
  if (config.store.kind === 'postgres') {
    const { url, source } = config.store;
    let store: PostgresStore;
    try {
      store = await PostgresStore.open(url, { busyTimeoutMs: config.storeBusyTimeoutMs });
    } catch (err) {
      throw new ConfigError(source, 'store.url', postgresProblem(err, url));
    }
    logger.info({ database: redactUrl(url) }, 'using the PostgreSQL store');
    return { store, close: () => store.close() };
  }
  // Taken before anything in the directory is touched, released after the store is closed.
  const lock = lockDataDir(config.dataDir, logger);
  let store: SqliteStore;
  try {
    store = SqliteStore.open(join(config.dataDir, DATABASE_FILE), { busyTimeoutMs: config.storeBusyTimeoutMs });
  } catch (err) {
    lock.release();
    throw err;
  }
  return {
    store,
    close: async () => {
      try {
        await store.close();
      } finally {
        lock.release();
      }
    },
  };
}
