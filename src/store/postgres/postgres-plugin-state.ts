// The plugin_state table in PostgreSQL, shared by every server on the database: a count one
// server's fail2lock made is seen by the others. Reads go to the pool (committed data). Each
// change is a transaction of its own, committed before it resolves, that first takes a
// transaction-level advisory lock of the plugin's namespace: changes of one plugin run one at a
// time across all servers (a read-modify-write such as an increment loses nothing, and the count
// of live keys the SDK's limit checks stays true until the commit), while other plugins' changes
// and the store's write transactions do not wait for them. They need not take the store's write
// lock: nothing else reads this table inside a transaction.
// Expiry is judged by the `now` the caller passes (the SDK's StateService computes expiresAt from
// the same clock), so servers sharing state should keep their clocks in step (NTP), as they must
// for token lifetimes anyway.
import { createHash } from 'node:crypto';
import type { Decision, StateEntry } from 'keyhold-plugin-sdk';
import type { PluginStateStore } from '../plugin-state.js';
import type { Query } from './postgres-reader.js';

interface StateRow {
  key: string;
  value: string;
  version: number;
  expires_at: number | null;
}

/** The first key of the namespaces' advisory locks ("khst" in ASCII); the second is a hash of the plugin's name. */
const STATE_LOCK_CLASS = 0x6b687374;

const LIVE = '(expires_at IS NULL OR expires_at > $2)';

function entryFrom(row: StateRow): StateEntry {
  return { key: row.key, value: row.value, version: row.version, expiresAt: row.expires_at };
}

/** The statement locking `plugin`'s namespace until the transaction ends (two plugins sharing a hash merely wait for each other). */
function namespaceLock(plugin: string): string {
  const hash = createHash('sha256').update(plugin).digest().readInt32BE(0);
  return `SELECT pg_advisory_xact_lock(${STATE_LOCK_CLASS}, ${hash})`;
}

/** Runs `work` in a transaction of its own that first runs `lock`, committed before it resolves. */
export type OwnTransaction = <T>(lock: string, work: (query: Query) => Promise<T>) => Promise<T>;

export class PostgresPluginState implements PluginStateStore {
  constructor(
    private readonly query: Query,
    private readonly transaction: OwnTransaction,
  ) {}

  async get(plugin: string, key: string, now: number): Promise<StateEntry | undefined> {
    const [row] = await selectOne(this.query, plugin, key, now);
    return row && entryFrom(row);
  }

  async list(plugin: string, prefix: string, after: string, limit: number, now: number): Promise<StateEntry[]> {
    const rows = await this.query<StateRow>(
      `SELECT key, value, version, expires_at FROM plugin_state
       WHERE plugin = $1 AND ${LIVE} AND key >= $3 AND key > $4 AND left(key, length($3)) = $3
       ORDER BY key LIMIT $5`,
      [plugin, now, prefix, after, limit],
    );
    return rows.map(entryFrom);
  }

  change<T>(
    plugin: string,
    key: string,
    now: number,
    decide: (current: StateEntry | undefined, liveKeys: () => Promise<number>) => Promise<Decision<T>>,
  ): Promise<T> {
    return this.transaction(namespaceLock(plugin), async (query) => {
      const [row] = await selectOne(query, plugin, key, now);
      const liveKeys = async () =>
        (await query<{ n: number }>(`SELECT count(*)::int AS n FROM plugin_state WHERE plugin = $1 AND ${LIVE}`, [plugin, now]))[0]!.n;
      const { next, result } = await decide(row && entryFrom(row), liveKeys);
      if (next === null) await query('DELETE FROM plugin_state WHERE plugin = $1 AND key = $2', [plugin, key]);
      else if (next !== undefined)
        await query(
          `INSERT INTO plugin_state (plugin, key, value, version, expires_at) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, version = excluded.version, expires_at = excluded.expires_at`,
          [plugin, key, next.value, next.version, next.expiresAt],
        );
      return result;
    });
  }

  async prune(now: number): Promise<number> {
    return (await this.query('DELETE FROM plugin_state WHERE expires_at <= $1 RETURNING 1 AS pruned', [now])).length;
  }
}

function selectOne(query: Query, plugin: string, key: string, now: number): Promise<StateRow[]> {
  return query<StateRow>(`SELECT key, value, version, expires_at FROM plugin_state WHERE plugin = $1 AND ${LIVE} AND key = $3`, [
    plugin,
    now,
    key,
  ]);
}
