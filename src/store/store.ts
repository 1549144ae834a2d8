// The narrow storage interface the engine and the operations use. SQLite (sqlite/) is the
// embedded default; a PostgreSQL store can implement the same interface for multi-replica sites.
// Every method is async so that a networked store fits without changing callers.
import type { Entity, Group } from 'keyhold-plugin-sdk';

export interface SearchQuery {
  /** Case-insensitive substring of the id/name, display name or legal name; empty matches all. */
  text?: string;
  /** At most this many results, in id/name order (default 100). */
  limit?: number;
  /** Results after this id/name, for paging. */
  after?: string;
}

/** One login throttle key's state (src/identity/login-throttle.ts); times in milliseconds since the epoch. */
export interface ThrottleRecord {
  key: string;
  failures: number;
  lastFailure: number;
  blockedUntil: number;
}

/** Reads. Inside a transaction they see the transaction's own writes. */
export interface StoreReader {
  /** The entity with its secret hash in `secret` and `meta.groups` filled from the direct memberships. */
  getEntity(id: string): Promise<Entity | undefined>;
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
  /** Inserts the entity; a `number` of 0 is replaced by the next free number. Returns it as stored. */
  insertEntity(entity: Entity): Promise<Entity>;
  /** Replaces the entity's secret hash and metadata (meta.groups is ignored: memberships are separate). */
  updateEntity(entity: Entity): Promise<void>;
  /** Deletes the entity and its memberships. */
  deleteEntity(id: string): Promise<void>;
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
}

export interface Store {
  /** Committed data only: never sees a transaction in progress. */
  readonly reader: StoreReader;
  /**
   * Runs `work` in one write transaction, serialised with every other write: commits when it
   * resolves, rolls back (nothing written) when it rejects.
   */
  write<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
