// The plugin_state table in SQLite (migration "plugin state"): reads on the read connection
// (committed data), each change in a write of its own on the store's write queue, which commits
// it before the change resolves (with the writes that queued beside it, each in its own savepoint).
import type Database from 'better-sqlite3';
import type { Decision, StateEntry } from 'keyhold-plugin-sdk';
import type { PluginStateStore } from '../plugin-state.js';

interface StateRow {
  key: string;
  value: string;
  version: number;
  expires_at: number | null;
}

const LIVE = '(expires_at IS NULL OR expires_at > @now)';

function entryFrom(row: StateRow): StateEntry {
  return { key: row.key, value: row.value, version: row.version, expiresAt: row.expires_at };
}

/** Runs `work` on the write connection inside the store's write queue, committed before it resolves. */
export type RunWrite = <T>(work: (db: Database.Database) => Promise<T>) => Promise<T>;

export class SqlitePluginState implements PluginStateStore {
  constructor(
    private readonly reader: Database.Database,
    private readonly runWrite: RunWrite,
    /** Runs a read, retrying while another process holds a lock (the store's read()). */
    private readonly read: <T>(run: () => T) => Promise<T>,
  ) {}

  get(plugin: string, key: string, now: number): Promise<StateEntry | undefined> {
    return this.read(() => {
      const row = selectOne(this.reader, plugin, key, now);
      return row && entryFrom(row);
    });
  }

  list(plugin: string, prefix: string, after: string, limit: number, now: number): Promise<StateEntry[]> {
    return this.read(() =>
      this.reader
        .prepare<Record<string, unknown>, StateRow>(
          `SELECT key, value, version, expires_at FROM plugin_state
           WHERE plugin = @plugin AND key >= @prefix AND key > @after AND substr(key, 1, length(@prefix)) = @prefix AND ${LIVE}
           ORDER BY key LIMIT @limit`,
        )
        .all({ plugin, prefix, after, limit, now })
        .map(entryFrom),
    );
  }

  change<T>(
    plugin: string,
    key: string,
    now: number,
    decide: (current: StateEntry | undefined, liveKeys: () => Promise<number>) => Promise<Decision<T>>,
  ): Promise<T> {
    return this.runWrite(async (db) => {
      const row = selectOne(db, plugin, key, now);
      const liveKeys = async () =>
        db
          .prepare<Record<string, unknown>, { n: number }>(`SELECT count(*) AS n FROM plugin_state WHERE plugin = @plugin AND ${LIVE}`)
          .get({ plugin, now })!.n;
      const { next, result } = await decide(row && entryFrom(row), liveKeys);
      if (next === null) db.prepare('DELETE FROM plugin_state WHERE plugin = ? AND key = ?').run(plugin, key);
      else if (next !== undefined)
        db.prepare('INSERT OR REPLACE INTO plugin_state (plugin, key, value, version, expires_at) VALUES (?, ?, ?, ?, ?)').run(
          plugin,
          key,
          next.value,
          next.version,
          next.expiresAt,
        );
      return result;
    });
  }

  prune(now: number): Promise<number> {
    return this.runWrite(async (db) => db.prepare('DELETE FROM plugin_state WHERE expires_at <= ?').run(now).changes);
  }
}

function selectOne(db: Database.Database, plugin: string, key: string, now: number): StateRow | undefined {
  return db
    .prepare<Record<string, unknown>, StateRow>(
      `SELECT key, value, version, expires_at FROM plugin_state WHERE plugin = @plugin AND key = @key AND ${LIVE}`,
    )
    .get({ plugin, key, now });
}
