// The delivery_leases table (migration "committed-event delivery leases"). On SQLite one server
// owns the data directory (src/data-dir-lock.ts), so its leases are always free or its own; they
// are still taken and renewed for real, as a networked store shared by several servers must.
import type Database from 'better-sqlite3';
import type { DeliveryLease, DeliveryLeaseStore } from '../outbox.js';
import type { WriteOnConnection } from './sqlite-signing-keys.js';

export class SqliteDeliveryLeases implements DeliveryLeaseStore {
  constructor(
    private readonly reader: Database.Database,
    private readonly write: WriteOnConnection,
  ) {}

  acquire(plugin: string, owner: string, ttlMs: number): Promise<boolean> {
    return this.write((db) => {
      const now = Date.now();
      // One conditional upsert: a lease held by another owner and not yet expired is left alone (no row changed).
      const taken = db
        .prepare(
          `INSERT INTO delivery_leases (plugin, owner, expires_at) VALUES (@plugin, @owner, @expires)
           ON CONFLICT (plugin) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
           WHERE delivery_leases.owner = excluded.owner OR delivery_leases.expires_at <= @now`,
        )
        .run({ plugin, owner, expires: now + ttlMs, now });
      return taken.changes > 0;
    });
  }

  async release(plugin: string, owner: string): Promise<void> {
    await this.write((db) => db.prepare('DELETE FROM delivery_leases WHERE plugin = ? AND owner = ?').run(plugin, owner));
  }

  async all(): Promise<DeliveryLease[]> {
    return this.reader
      .prepare<[], { plugin: string; owner: string; expires_at: number }>(
        'SELECT plugin, owner, expires_at FROM delivery_leases ORDER BY plugin',
      )
      .all()
      .map((r) => ({ plugin: r.plugin, owner: r.owner, expiresAt: r.expires_at }));
  }
}
