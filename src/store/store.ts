// The narrow storage interface the engine and the operations use. SQLite (sqlite/) is the
// embedded default; postgres/ implements the same interface for several servers on one database.
// Every method is async so that a networked store fits without changing callers.
import type { Capability, Entity, Group } from 'keyhold-plugin-sdk';
import type { DeliveryLeaseStore, OutboxReader, OutboxWriter } from './outbox.js';
import type { SigningKeyStore } from './signing-keys.js';
import type { PluginStateStore } from './plugin-state.js';

export interface SearchQuery {
  /** Case-insensitive substring of the id/name, display name or legal name; empty matches all. */
  text?: string;
  /** At most this many results, in id/name order (default 100). */
  limit?: number;
  /** Results after this id/name, for paging. */
  after?: string;
}

/** An entity (by id) or a group (by name), as the engine locks and versions it. */
export interface SubjectRef {
  kind: 'entity' | 'group';
  key: string;
}

/** One login throttle key's state (src/identity/login-throttle.ts); times in milliseconds since the epoch. */
export interface ThrottleRecord {
  key: string;
  failures: number;
  lastFailure: number;
  blockedUntil: number;
}

/** An entity with its secret hash and version, as StoreReader.loginRecord reads them together. */
export interface LoginRecord {
  entity: Entity;
  secretHash: string;
  version: number;
}

/** Reads. Inside a transaction they see the transaction's own writes. */
export interface StoreReader {
  /** The entity with `meta.groups` filled from the direct memberships; its `secret` is always '' (the hash is read with secretHash only). */
  getEntity(id: string): Promise<Entity | undefined>;
  /** The entity's secret hash ('' when it has no secret), or undefined when there is no such entity. */
  secretHash(id: string): Promise<string | undefined>;
  /** What a login reads, from one snapshot and one row: the entity (as getEntity), its secret hash ('' when none) and its version; undefined when there is no such entity. */
  loginRecord(id: string): Promise<LoginRecord | undefined>;
  searchEntities(query: SearchQuery): Promise<Entity[]>;
  countEntities(): Promise<number>;
  getGroup(name: string): Promise<Group | undefined>;
  searchGroups(query: SearchQuery): Promise<Group[]>;
  /** Ids of the entities that are direct members of the group, sorted. */
  directMembers(group: string): Promise<string[]>;
  /** Names of the groups whose expansions name `group` (either mode), sorted. */
  groupsExpanding(group: string): Promise<string[]>;
  /** Names of the groups whose managedBy is `group`, sorted. */
  groupsManagedBy(group: string): Promise<string[]>;
  /** The entity's token generation (what its tokens must carry), or undefined when there is no such entity. */
  tokenGeneration(entityId: string): Promise<string | undefined>;
  /** Ids of the entities holding `capability` directly (not through groups), sorted. */
  entitiesWithCapability(capability: Capability): Promise<string[]>;
  /** Names of the groups carrying `capability` themselves (not through expansions), sorted. */
  groupsWithCapability(capability: Capability): Promise<string[]>;
  /** The subject's version: changes with every write to it (memberships of an entity and expansions of a group included); undefined when it does not exist. */
  version(subject: SubjectRef): Promise<number | undefined>;
  /** The number an insert of `kind` with number 0 would get now (the highest in use plus one). */
  nextNumber(kind: SubjectRef['kind']): Promise<number>;
  /** The id the first start created the root entity with (the entity may have been destroyed since), or undefined. */
  bootstrapRoot(): Promise<string | undefined>;
  /** The login throttle records of those of `keys` that have one. */
  throttleRecords(keys: readonly string[]): Promise<ThrottleRecord[]>;
  /** When `entityId` last logged in from `address` (as remembered by rememberLogin), or undefined. */
  lastLoginFrom(entityId: string, address: string): Promise<number | undefined>;
}

/**
 * Writes, inside one transaction. Uniqueness is enforced by the database: inserting a taken
 * id/name/number rejects with KeyholdError KH_ERR_ENTITY_EXISTS / KH_ERR_GROUP_EXISTS / KH_ERR_NUMBER_TAKEN.
 */
export interface StoreTransaction extends StoreReader {
  /**
   * Inserts the entity, without a secret (its `secret` is ignored: setSecretHash sets one), with a
   * new random token generation (so that no token of an earlier entity with the same id or number
   * fits it); a `number` of 0 is replaced by the next free number.
   * Returns it as stored.
   */
  insertEntity(entity: Entity): Promise<Entity>;
  /** Replaces the entity's metadata (its `secret` and meta.groups are ignored: the hash and memberships are written separately). */
  updateEntity(entity: Entity): Promise<void>;
  /** Replaces the entity's secret hash (the only way it is written). */
  setSecretHash(id: string, hash: string): Promise<void>;
  /** Deletes the entity, its memberships and its token generation. */
  deleteEntity(id: string): Promise<void>;
  /** Replaces the entity's token generation with a new random one: every token issued before is refused. */
  renewTokenGeneration(entityId: string): Promise<void>;
  insertGroup(group: Group): Promise<Group>;
  /** Replaces the group's data, expansions included. */
  updateGroup(group: Group): Promise<void>;
  /** Deletes the group and its memberships. */
  deleteGroup(name: string): Promise<void>;
  addMembership(entityId: string, group: string): Promise<void>;
  removeMembership(entityId: string, group: string): Promise<void>;
  /** Inserts or replaces login throttle records. */
  putThrottleRecords(records: readonly ThrottleRecord[]): Promise<void>;
  deleteThrottleRecords(keys: readonly string[]): Promise<void>;
  /** Remembers a login of `entityId` from `address` at `at`; nothing when the entity no longer exists. */
  rememberLogin(entityId: string, address: string, at: number): Promise<void>;
  /** Deletes the throttle records not blocked at `now` whose last failure is before `failuresBefore`, and the logins before `loginsBefore`. */
  pruneLoginThrottle(now: number, failuresBefore: number, loginsBefore: number): Promise<void>;
  /** Records the id of the root entity the first start creates (replacing any earlier record). */
  recordBootstrapRoot(id: string): Promise<void>;
  /** The committed-event outbox, written in this transaction. */
  readonly outbox: OutboxWriter;
}

/** How the store is doing, for the health endpoint: checked when asked, cheaply (no write is made). */
export interface StoreHealth {
  /** Whether a read answers. */
  reads: 'ok' | 'failing';
  /** Whether a write could commit: `busy`, another process holds the database lock; `full`, no room on the disk; `failing`, the files cannot be used. */
  writes: 'ok' | 'busy' | 'full' | 'failing';
  /** What is wrong, for people; absent when both are ok. */
  problem?: string;
  /** Write transactions of this server waiting for their turn. */
  queuedWrites: number;
}

export interface Store {
  /** Committed data only: never sees a transaction in progress. */
  readonly reader: StoreReader;
  /** The outbox's committed rows. */
  readonly outbox: OutboxReader;
  /** The plugins' state: each change a short write transaction of its own, committed at once. */
  readonly pluginState: PluginStateStore;
  /** The token signing keys, shared by every server on the database (signing-keys.ts). */
  readonly keys: SigningKeyStore;
  /** Which server delivers each plugin's committed events (outbox.ts). */
  readonly leases: DeliveryLeaseStore;
  /**
   * Runs `work` in one write transaction, serialised with every other write: commits when it
   * resolves, rolls back (nothing written) when it rejects.
   */
  write<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T>;
  /**
   * A number that differs from the one read before whenever anything has been committed in
   * between, by this process or any other on the same database: caches of committed data compare
   * it to know they are still current.
   */
  changeCounter(): Promise<number>;
  health(): Promise<StoreHealth>;
  close(): Promise<void>;
}
