// The SQLite schema, as an ordered list of migrations. The database's PRAGMA user_version is the
// number of migrations applied; opening a store applies the missing ones, each in its own
// transaction together with the version bump. Never edit a released migration: append a new one.
import type Database from 'better-sqlite3';
import { decodeEntity, decodeGroup } from 'keyhold-plugin-sdk';

export interface Migration {
  /** What it does, for the log and for people reading the schema's history. */
  description: string;
  sql: string;
  /** Fills what the new schema derives from data SQL cannot read (the encoded blobs); runs after `sql`, in the same transaction. */
  backfill?(db: Database.Database): void;
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
    description: 'token generations: one random value per entity that its tokens must carry',
    sql: `
      -- Replaced on a secret change, a lock and a logout; new for every created entity, gone with it.
      CREATE TABLE token_generations (
        entity_id TEXT PRIMARY KEY REFERENCES entities (id) ON DELETE CASCADE,
        generation TEXT NOT NULL
      ) STRICT, WITHOUT ROWID;
      INSERT INTO token_generations (entity_id, generation) SELECT id, lower(hex(randomblob(16))) FROM entities;
    `,
  },
  {
    description: 'capabilities held directly, by capability',
    sql: `
      -- A copy of the capabilities in each entity's and group's blob, so that the holders of one
      -- capability are found by index (the last GLOBAL_ROOT holder rule asks after every change
      -- to a root-privileged subject) instead of by decoding every row. Written with the blob.
      CREATE TABLE entity_capabilities (
        entity_id TEXT NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
        capability TEXT NOT NULL,
        PRIMARY KEY (entity_id, capability)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX entity_capabilities_by_capability ON entity_capabilities (capability, entity_id);

      CREATE TABLE group_capabilities (
        group_name TEXT NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
        capability TEXT NOT NULL,
        PRIMARY KEY (group_name, capability)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX group_capabilities_by_capability ON group_capabilities (capability, group_name);
    `,
    backfill(db) {
      const entityCapability = db.prepare('INSERT INTO entity_capabilities (entity_id, capability) VALUES (?, ?)');
      for (const row of db.prepare<[], { id: string; data: Buffer }>('SELECT id, data FROM entities').all()) {
        for (const capability of new Set(decodeEntity(row.data).meta.capabilities)) entityCapability.run(row.id, capability);
      }
      const groupCapability = db.prepare('INSERT INTO group_capabilities (group_name, capability) VALUES (?, ?)');
      for (const row of db.prepare<[], { name: string; data: Buffer }>('SELECT name, data FROM groups').all()) {
        for (const capability of new Set(decodeGroup(row.data).capabilities)) groupCapability.run(row.name, capability);
      }
    },
  },
  {
    description: 'committed-event outbox: events, delivery cursors, dead letters',
    sql: `
      -- One row per committed lifecycle step that a plugin subscribed to, written in the request's
      -- own transaction. AUTOINCREMENT: a seq is never reused, even after old rows are pruned,
      -- so a cursor can never point past a newer event. body: {before, after, request} as JSON,
      -- never a secret or a hash. at: commit time, epoch ms.
      CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        point TEXT NOT NULL,
        operation TEXT NOT NULL,
        subject_kind TEXT NOT NULL CHECK (subject_kind IN ('entity', 'group')),
        subject_key TEXT NOT NULL,
        request_id TEXT NOT NULL,
        caller TEXT,
        body TEXT NOT NULL
      ) STRICT;

      -- Per plugin (by name), the last seq handed to it: delivery resumes after it, also after a restart.
      CREATE TABLE event_cursors (
        plugin TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;

      -- Events a plugin failed to take maxAttempts times; the event is kept while one refers to it.
      CREATE TABLE event_dead_letters (
        plugin TEXT NOT NULL,
        seq INTEGER NOT NULL REFERENCES events (seq),
        attempts INTEGER NOT NULL,
        last_error TEXT NOT NULL,
        failed_at INTEGER NOT NULL,
        PRIMARY KEY (plugin, seq)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX event_dead_letters_by_seq ON event_dead_letters (seq);
    `,
  },
  {
    description: 'server facts: the bootstrap root, the default break-glass exemption of login policy plugins',
    sql: `
      -- Facts about this server's data that outlive a restart, one value per key.
      CREATE TABLE server_facts (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) STRICT, WITHOUT ROWID;
      -- A store bootstrapped before this table existed: its first entity was the bootstrap root;
      -- the oldest entity still holding GLOBAL_ROOT directly stands for it.
      INSERT INTO server_facts (key, value)
        SELECT 'bootstrapRoot', id FROM entities WHERE id IN (SELECT entity_id FROM entity_capabilities WHERE capability = 'GLOBAL_ROOT') ORDER BY rowid LIMIT 1;
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
  {
    description: 'versions of entities and groups: a request commits only if its subjects did not change since it read them',
    sql: `
      -- Bumped by every write to the row, its memberships (entities) or its expansions (groups).
      -- Hooks run outside the write transaction; the commit compares the version read before them.
      ALTER TABLE entities ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE groups ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    `,
  },
  {
    description: "plugin state: each plugin's keys, kept by the host for it",
    sql: `
      -- One row per key of one plugin's namespace (src/store/plugin-state.ts). expires_at (epoch
      -- ms, NULL for never) hides an entry once passed; expired rows are pruned.
      CREATE TABLE plugin_state (
        plugin TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        version INTEGER NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (plugin, key)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX plugin_state_expiry ON plugin_state (expires_at) WHERE expires_at IS NOT NULL;
    `,
  },
  {
    description: 'token signing keys, shared by every server on the database',
    sql: `
      -- One row per key (src/store/signing-keys.ts): the current one (retired_at NULL) signs new
      -- tokens; a retired one verifies until one token lifetime after retired_at. Times in ms.
      CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        private_key TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        retired_at INTEGER,
        origin TEXT NOT NULL CHECK (origin IN ('generated', 'imported'))
      ) STRICT, WITHOUT ROWID;
      -- At most one current key.
      CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((retired_at IS NULL)) WHERE retired_at IS NULL;
    `,
  },
  {
    description: 'committed-event delivery leases: which server delivers to each plugin',
    sql: `
      -- One row per plugin (src/store/outbox.ts, DeliveryLeaseStore): the server process (owner)
      -- that may deliver its committed events until expires_at (ms since the epoch), renewed
      -- periodically; another server takes it over only once it has expired.
      CREATE TABLE delivery_leases (
        plugin TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;
    `,
  },
];

/** Brings the database up to the latest schema version; refuses a database from a newer keyhold. */
export function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(
      `the database has schema version ${current}, newer than this keyhold knows (${MIGRATIONS.length}); upgrade keyhold or restore a backup`,
    );
  }
  for (let version = current + 1; version <= MIGRATIONS.length; version++) {
    const migration = MIGRATIONS[version - 1]!;
    db.transaction(() => {
      db.exec(migration.sql);
      migration.backfill?.(db);
      db.pragma(`user_version = ${version}`);
    }).immediate();
  }
}
