// The delivery_leases table in PostgreSQL, where several servers do compete for each plugin's
// lease. Each method is one statement on the pool (a transaction of its own): the conditional
// upsert is atomic, as two servers inserting or updating one plugin's row at once are ordered by
// its primary key and the second re-checks the condition against the first's row.
// Expiry is judged by the database's clock (clock_timestamp()), never a server's: the servers
// compare one clock, so one whose clock runs ahead cannot take a lease the holder still renews,
// and one whose clock runs behind cannot keep a lease past its expiry. The holder's own view of
// how long it holds the lease stays on its own clock, measured from before its request
// (src/events/lease.ts), which is never later than the database's expiry, less the drift in rate only.
import type { DeliveryLease, DeliveryLeaseStore } from '../outbox.js';
import type { Query } from './postgres-reader.js';

/** The database's time now, in ms since the epoch. */
const DB_NOW_MS = '(extract(epoch FROM clock_timestamp()) * 1000)::bigint';

export class PostgresDeliveryLeases implements DeliveryLeaseStore {
  constructor(private readonly query: Query) {}

  async acquire(plugin: string, owner: string, ttlMs: number): Promise<boolean> {
    // A lease held by another owner and not yet expired is left alone: no row returned.
    const rows = await this.query(
      `INSERT INTO delivery_leases (plugin, owner, expires_at) VALUES ($1, $2, ${DB_NOW_MS} + $3)
       ON CONFLICT (plugin) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
       WHERE delivery_leases.owner = excluded.owner OR delivery_leases.expires_at <= ${DB_NOW_MS}
       RETURNING 1 AS taken`,
      [plugin, owner, Math.ceil(ttlMs)],
    );
    return rows.length > 0;
  }

  async release(plugin: string, owner: string): Promise<void> {
    await this.query('DELETE FROM delivery_leases WHERE plugin = $1 AND owner = $2', [plugin, owner]);
  }

  async all(): Promise<DeliveryLease[]> {
    const rows = await this.query<{ plugin: string; owner: string; expires_at: number }>(
      'SELECT plugin, owner, expires_at FROM delivery_leases ORDER BY plugin',
    );
    return rows.map((r) => ({ plugin: r.plugin, owner: r.owner, expiresAt: r.expires_at }));
  }
}
