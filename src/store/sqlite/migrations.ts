// The SQLite schema, as an ordered list of migrations. The database's PRAGMA user_version is the
// number of migrations applied; opening a store applies the missing ones, each in its own
// transaction together with the version bump. Never edit a released migration: append a new one.
import type Database from 'better-sqlite3';

export interface Migration {
  /** What it does, for the log and for people reading the schema's history. */
  description: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    description: 'entities, groups, memberships and expansions',
    sql: `
      -- The object's encoded protobuf lives in data; the columns beside it are what the database
      -- must enforce (uniqueness, references) or search on. id/name and number are authoritative
      -- in their columns; the secret hash is kept out of the blob so it is never encoded by mistake.
      CREATE TABLE entities (
        id TEXT PRIMARY KEY,
        number INTEGER NOT NULL UNIQUE,
        secret TEXT NOT NULL,
        display_name TEXT NOT NULL,
        legal_name TEXT NOT NULL,
        data BLOB NOT NULL
      ) STRICT;
      -- Searching reads only this index until it has its page of ids (a covering index).
      CREATE INDEX entities_search ON entities (id, display_name, legal_name);

      CREATE TABLE groups (
        name TEXT PRIMARY KEY,
        number INTEGER NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        -- A group that manages others cannot be deleted (the default NO ACTION, checked at the end
        -- of the statement, so a group managing itself can be); NULL when unmanaged.
        managed_by TEXT REFERENCES groups (name),
        data BLOB NOT NULL
      ) STRICT;
      CREATE INDEX groups_search ON groups (name, display_name);
      CREATE INDEX groups_by_manager ON groups (managed_by);

      CREATE TABLE memberships (
        entity_id TEXT NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
        group_name TEXT NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
        PRIMARY KEY (entity_id, group_name)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX memberships_by_group ON memberships (group_name, entity_id);

      -- One row per expansion; a group another one expands cannot be deleted.
      CREATE TABLE expansions (
        group_name TEXT NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('INCLUDE', 'EXCLUDE')),
        target TEXT NOT NULL REFERENCES groups (name),
        PRIMARY KEY (group_name, target)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX expansions_by_target ON expansions (target, group_name);
    `,
  },
  {
    description: 'login throttle state and the addresses entities logged in from',
    sql: `
      -- One row per throttle key (src/identity/login-throttle.ts): an address, an (id, address)
      -- pair or a presented id, known or not. Times are milliseconds since the epoch. Kept here so
      -- that a restart does not wipe an attacker's delays; rows are pruned once they expire.
      CREATE TABLE login_throttle (
        key TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        last_failure INTEGER NOT NULL,
        blocked_until INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;

      -- Where each entity last logged in successfully: the per-id delay does not apply there.
      CREATE TABLE familiar_addresses (
        entity_id TEXT NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
        address TEXT NOT NULL,
        last_login INTEGER NOT NULL,
        PRIMARY KEY (entity_id, address)
      ) STRICT, WITHOUT ROWID;
    `,
  },
];

/** Brings the database up to the latest schema version; refuses a database from a newer keyhold. */
export function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`the database has schema version ${current}, newer than this keyhold knows (${MIGRATIONS.length}); upgrade keyhold or restore a backup`);
  }
  for (let version = current + 1; version <= MIGRATIONS.length; version++) {
    const migration = MIGRATIONS[version - 1]!;
    db.transaction(() => {
      db.exec(migration.sql);
      db.pragma(`user_version = ${version}`);
    }).immediate();
  }
}
