// What the identity server can do: NetAuth's operation set, each mutating one mapped to one of
// the twelve lifecycle points. The HTTP API and the CLI speak in these terms; identity.ts
// implements them on the lifecycle engine and the store.
import type { Capability, Entity, EntityMeta, ExpansionMode, Group, KVValues } from 'keyhold-plugin-sdk';
import type { RequestInfo } from '../lifecycle/engine.js';
import type { SearchQuery } from '../store/store.js';

/** The typed metadata fields an update may set (memberships, capabilities, keys, untyped meta and kv have their own operations). */
export const ENTITY_META_FIELDS = [
  'primaryGroup',
  'gecos',
  'legalName',
  'displayName',
  'home',
  'shell',
  'graphicalShell',
  'badgeNumber',
] as const;
export type EntityMetaField = (typeof ENTITY_META_FIELDS)[number];
export type EntityMetaPatch = Partial<Pick<EntityMeta, EntityMetaField>>;

export interface CreateEntityInput {
  id: string;
  /** 0 or absent: the next free number. */
  number?: number;
  /** Plain-text initial secret: when given, a SecretChange runs after EntityCreate in the same transaction. */
  secret?: string;
  meta?: EntityMetaPatch;
  /** Initial capabilities (the API allows this to GLOBAL_ROOT callers only; bootstrap uses it for root). */
  capabilities?: Capability[];
}

export interface CreateGroupInput {
  name: string;
  number?: number;
  displayName?: string;
  managedBy?: string;
  capabilities?: Capability[];
  expansions?: { mode: ExpansionMode; group: string }[];
}

export type GroupPatch = Partial<Pick<Group, 'displayName' | 'managedBy'>>;

/** Untyped "key:value" metadata changes, as NetAuth's UM call. */
export type UntypedMetaChange =
  | { action: 'upsert'; key: string; value: string }
  /** Removes every entry whose key starts with `key` (so `site` clears `site:x` and `site{x}:…`). */
  | { action: 'clear-fuzzy'; key: string }
  /** Removes the entries whose key is exactly `key`. */
  | { action: 'clear-exact'; key: string };

export type KvChange =
  | { action: 'add'; key: string; values: string[] }
  | { action: 'replace'; key: string; values: string[] }
  | { action: 'delete'; key: string };

export type SetChange<T> = { action: 'add' | 'remove'; value: T };

export interface IdentityOperations {
  // Entities
  createEntity(info: RequestInfo, input: CreateEntityInput): Promise<Entity>;
  entityInfo(id: string): Promise<Entity>;
  searchEntities(query: SearchQuery): Promise<Entity[]>;
  updateEntityMeta(info: RequestInfo, id: string, patch: EntityMetaPatch): Promise<Entity>;
  entityUntypedMeta(info: RequestInfo, id: string, change: UntypedMetaChange): Promise<Entity>;
  entityKv(info: RequestInfo, id: string, change: KvChange): Promise<Entity>;
  entityKvGet(id: string, key: string): Promise<KVValues>;
  entityKeys(info: RequestInfo, id: string, change: SetChange<string>): Promise<Entity>;
  entityCapabilities(info: RequestInfo, id: string, change: SetChange<Capability>): Promise<Entity>;
  lockEntity(info: RequestInfo, id: string): Promise<Entity>;
  unlockEntity(info: RequestInfo, id: string): Promise<Entity>;
  destroyEntity(info: RequestInfo, id: string): Promise<void>;
  setSecret(info: RequestInfo, id: string, secret: string): Promise<void>;
  /** Validates id + secret; an unknown id and a wrong secret get the same error in similar time. */
  authCheck(info: RequestInfo, id: string, secret: string): Promise<Entity>;
  /** Group names the entity is in: direct only, or also through expansions. */
  entityGroups(id: string, options: { indirect: boolean }): Promise<string[]>;
  /** The entity's own capabilities plus those of every group it is in, directly or through expansions. */
  effectiveCapabilities(id: string): Promise<Capability[]>;

  // Groups
  createGroup(info: RequestInfo, input: CreateGroupInput): Promise<Group>;
  groupInfo(name: string): Promise<Group>;
  searchGroups(query: SearchQuery): Promise<Group[]>;
  updateGroup(info: RequestInfo, name: string, patch: GroupPatch): Promise<Group>;
  groupUntypedMeta(info: RequestInfo, name: string, change: UntypedMetaChange): Promise<Group>;
  groupKv(info: RequestInfo, name: string, change: KvChange): Promise<Group>;
  groupKvGet(name: string, key: string): Promise<KVValues>;
  groupCapabilities(info: RequestInfo, name: string, change: SetChange<Capability>): Promise<Group>;
  /** Adds or removes an INCLUDE/EXCLUDE expansion; targets must exist and no cycle may form. */
  groupExpansions(info: RequestInfo, name: string, change: SetChange<{ mode: ExpansionMode; group: string }>): Promise<Group>;
  addMember(info: RequestInfo, group: string, entityId: string): Promise<Entity>;
  removeMember(info: RequestInfo, group: string, entityId: string): Promise<Entity>;
  /** Entity ids of the group's members with expansions resolved (INCLUDE adds, EXCLUDE removes). */
  groupMembers(name: string): Promise<string[]>;
  destroyGroup(info: RequestInfo, name: string): Promise<void>;
}
