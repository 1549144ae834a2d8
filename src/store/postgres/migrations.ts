// The PostgreSQL schema, as an ordered list of migrations recorded in keyhold_migrations. The same
// tables as the SQLite schema (sqlite/migrations.ts), written once in their current shape: this
// store starts at version 1. Several servers may start at once on one database, so migrating holds
// a session-level advisory lock: the second server waits, then finds nothing left to apply.
import type pg from 'pg';

export interface PgMigration {
  /** What it does, for people reading the schema's history. */
  description: string;
  sql: string;
}

/** The advisory lock key migrations hold (any constant; "khmigr" in ASCII). */
const MIGRATION_LOCK = 0x6b686d69677200n;

export const PG_MIGRATIONS: readonly PgMigration[] = [
  {
    description: 'identity data, token generations, capabilities, outbox, server facts, login throttle, versions, change counter',
    sql: `
      -- Keys are compared byte by byte (COLLATE "C"), as SQLite does: paging by id/name and sorting
      -- give the same order on both stores, whatever the database's locale.
      CREATE TABLE entities (
        id TEXT COLLATE "C" CONSTRAINT entities_id_key PRIMARY KEY,
        number INTEGER NOT NULL CONSTRAINT entities_number_key UNIQUE,
        secret TEXT NOT NULL,
        display_name TEXT NOT NULL,
        legal_name TEXT NOT NULL,
        data BYTEA NOT NULL,
        -- Bumped by every write to the row and to its memberships; the commit re-validates it.
        version BIGINT NOT NULL DEFAULT 0
      );

      CREATE TABLE groups (
        name TEXT COLLATE "C" CONSTRAINT groups_name_key PRIMARY KEY,
        number INTEGER NOT NULL CONSTRAINT groups_number_key UNIQUE,
        display_name TEXT NOT NULL,
        -- NO ACTION is checked at the end of the statement: a group managing itself can be deleted.
        managed_by TEXT COLLATE "C" CONSTRAINT groups_managed_by_fkey REFERENCES groups (name),
        data BYTEA NOT NULL,
        version BIGINT NOT NULL DEFAULT 0
      );
      CREATE INDEX groups_by_manager ON groups (managed_by);

      CREATE TABLE memberships (
        entity_id TEXT COLLATE "C" NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
        group_name TEXT COLLATE "C" NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
        CONSTRAINT memberships_key PRIMARY KEY (entity_id, group_name)
      );
      CREATE INDEX memberships_by_group ON memberships (group_name, entity_id);

      CREATE TABLE expansions (
        group_name TEXT COLLATE "C" NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('INCLUDE', 'EXCLUDE')),
        target TEXT COLLATE "C" NOT NULL CONSTRAINT expansions_target_fkey REFERENCES groups (name),
        CONSTRAINT expansions_key PRIMARY KEY (group_name, target)
      );
      CREATE INDEX expansions_by_target ON expansions (target, group_name);

      CREATE TABLE token_generations (
        entity_id TEXT COLLATE "C" PRIMARY KEY REFERENCES entities (id) ON DELETE CASCADE,
        generation TEXT NOT NULL
      );

      CREATE TABLE entity_capabilities (
        entity_id TEXT COLLATE "C" NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
        capability TEXT NOT NULL,
        PRIMARY KEY (entity_id, capability)
      );
      CREATE INDEX entity_capabilities_by_capability ON entity_capabilities (capability, entity_id);

      CREATE TABLE group_capabilities (
        group_name TEXT COLLATE "C" NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
        capability TEXT NOT NULL,
        PRIMARY KEY (group_name, capability)
      );
      CREATE INDEX group_capabilities_by_capability ON group_capabilities (capability, group_name);

      -- seq from a sequence, never reused after pruning. Appends are serialised by the store's write
      -- lock, so seqs become visible in order (see postgres-outbox.ts).
      CREATE TABLE events (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at BIGINT NOT NULL,
        point TEXT NOT NULL,
        operation TEXT NOT NULL,
        subject_kind TEXT NOT NULL CHECK (subject_kind IN ('entity', 'group')),
        subject_key TEXT NOT NULL,
        request_id TEXT NOT NULL,
        caller TEXT,
        body TEXT NOT NULL
      );

      CREATE TABLE event_cursors (
        plugin TEXT COLLATE "C" PRIMARY KEY,
        seq BIGINT NOT NULL
      );

      CREATE TABLE event_dead_letters (
        plugin TEXT COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL REFERENCES events (seq),
        attempts INTEGER NOT NULL,
        last_error TEXT NOT NULL,
        failed_at BIGINT NOT NULL,
        PRIMARY KEY (plugin, seq)
      );
      CREATE INDEX event_dead_letters_by_seq ON event_dead_letters (seq);

      CREATE TABLE server_facts (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );

      CREATE TABLE login_throttle (
        key TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        last_failure BIGINT NOT NULL,
        blocked_until BIGINT NOT NULL
      );

      CREATE TABLE familiar_addresses (
        entity_id TEXT COLLATE "C" NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
        address TEXT NOT NULL,
        last_login BIGINT NOT NULL,
        PRIMARY KEY (entity_id, address)
      );

      -- One row, bumped by every write transaction of every server: what changeCounter() reads.
      CREATE TABLE change_counter (
        only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
        value BIGINT NOT NULL
      );
      INSERT INTO change_counter (value) VALUES (0);
    `,
  },
  {
    description: "plugin state: each plugin's keys, kept by the host for it",
    sql: `
      -- One row per key of one plugin's namespace (src/store/plugin-state.ts). expires_at (epoch
      -- ms, NULL for never) hides an entry once passed; expired rows are pruned. Keys compare byte by byte, as on SQLite.
      CREATE TABLE plugin_state (
        plugin TEXT COLLATE "C" NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        value TEXT NOT NULL,
        version BIGINT NOT NULL,
        expires_at BIGINT,
        PRIMARY KEY (plugin, key)
      );
      CREATE INDEX plugin_state_expiry ON plugin_state (expires_at) WHERE expires_at IS NOT NULL;
    `,
  },
  {
    description: 'token signing keys, shared by every server on the database',
    sql: `
      -- One row per key (src/store/signing-keys.ts): the current one (retired_at NULL) signs new
      -- tokens; a retired one verifies until one token lifetime after retired_at. Times in ms.
      CREATE TABLE signing_keys (
        kid TEXT COLLATE "C" PRIMARY KEY,
        private_key TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        retired_at BIGINT,
        origin TEXT NOT NULL CHECK (origin IN ('generated', 'imported'))
      );
      -- At most one current key.
      CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((retired_at IS NULL)) WHERE retired_at IS NULL;
    `,
  },
  {
    description: 'committed-event delivery leases: which server delivers to each plugin',
    sql: `
      -- One row per plugin (src/store/outbox.ts, DeliveryLeaseStore): the server process (owner)
      -- that may deliver its committed events until expires_at (ms since the epoch by the
      -- database's clock), renewed periodically; another server takes it over only once it has expired.
      CREATE TABLE delivery_leases (
        plugin TEXT COLLATE "C" PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at BIGINT NOT NULL
      );
    `,
  },
];

/**
 * Brings the database up to the latest schema version, each migration in its own transaction with
 * its record; refuses a database from a newer keyhold. Holds MIGRATION_LOCK meanwhile, so servers
 * starting together migrate one after the other.
 */
export async function migrate(client: pg.ClientBase): Promise<void> {
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK.toString()]);
  try {
    await client.query(
      'CREATE TABLE IF NOT EXISTS keyhold_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())',
    );
    const { rows } = await client.query<{ current: number }>('SELECT coalesce(max(version), 0)::int AS current FROM keyhold_migrations');
    const current = rows[0]!.current;
    if (current > PG_MIGRATIONS.length) {
      throw new Error(
        `the database has schema version ${current}, newer than this keyhold knows (${PG_MIGRATIONS.length}); upgrade keyhold or restore a backup`,
      );
    }
    for (let version = current + 1; version <= PG_MIGRATIONS.length; version++) {
      const migration = PG_MIGRATIONS[version - 1]!;
      await client.query('BEGIN');
      try {
        await client.query(migration.sql);
        await client.query('INSERT INTO keyhold_migrations (version, description) VALUES ($1, $2)', [version, migration.description]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK.toString()]);
  }
}
