// The identity operations on the lifecycle engine and the store. Each mutating operation is one
// LifecycleStep: request checks that need no data (names, shapes) happen before the step starts;
// checks against the data (exists, member, cycles, and the authorization rules of protection.ts)
// happen in `change`, after PRE hooks, as the contract says. Every step's `change` persists PRE's
// output together with the change itself.
import { randomBytes } from 'node:crypto';
import {
  CAPABILITIES,
  clearUntypedExact,
  clearUntypedFuzzy,
  EXPANSION_MODES,
  jsonEqual,
  parseEntity,
  parseGroup,
  SchemaError,
  upsertUntyped,
  type Capability,
  type Entity,
  type Expansion,
  type Group,
  type JsonObject,
  type KVValues,
  type LifecyclePoint,
} from 'keyhold-plugin-sdk';
import { isKeyholdError, KeyholdError } from '../errors.js';
import type { Subject } from '../lifecycle/chain.js';
import type { LifecycleEngine, LifecycleStep, RequestInfo } from '../lifecycle/engine.js';
import type { SearchQuery, Store, StoreReader, StoreTransaction } from '../store/store.js';
import { AuthFailed } from './auth-failure.js';
import { capabilitiesHeld, checkExpansions, resolveGroupsOf, resolveMembers } from './expansions.js';
import { CODE_POINT_RULE, codePointProblem, reservedKeyProblem } from './name-rules.js';
import { HashSlots } from './hash-slots.js';
import {
  ENTITY_META_FIELDS,
  type CreateEntityInput,
  type CreateGroupInput,
  type EntityMetaPatch,
  type GroupPatch,
  type IdentityOperations,
  type KvChange,
  type SetChange,
  type UntypedMetaChange,
} from './operations.js';
import { checkManagedBy, guardChange, type ChangeGuard, type ProtectedSubject } from './protection.js';
import { hashSecret, needsRehash, resolveHashParams, verifySecret, type HashParams } from './secrets.js';

/** Longest entity id or group name, in characters: room for e.g. e-mail-like ids, short enough for paths and logs. */
export const MAX_NAME_LENGTH = 128;
/** Longest secret, in characters: far above any passphrase, low enough that hashing it is no denial of service. */
export const MAX_SECRET_LENGTH = 1024;

const NAME_RULE = `1 to ${MAX_NAME_LENGTH} characters, ${CODE_POINT_RULE}, not starting with '-'`;

/** What is wrong with `value` as a name, or undefined when it is fine. */
function nameProblem(value: string): string | undefined {
  if (value.length === 0) return 'it is empty';
  if ([...value].length > MAX_NAME_LENGTH) return `it is ${[...value].length} characters long`;
  const codePoint = codePointProblem(value);
  if (codePoint) return codePoint;
  if (value.startsWith('-')) return "it starts with '-'";
  return undefined;
}

/** Entity ids and group names: KH_ERR_INVALID_NAME saying what is wrong and what is allowed. */
function checkName(kind: 'entity id' | 'group name', value: string): void {
  const problem = nameProblem(value);
  if (problem) throw new KeyholdError('KH_ERR_INVALID_NAME', `invalid ${kind} ${JSON.stringify(value)}: ${problem}; ${kind}s are ${NAME_RULE}`, { [kind === 'entity id' ? 'id' : 'name']: value });
}

function invalidInput(message: string): KeyholdError {
  return new KeyholdError('KH_ERR_INVALID_INPUT', message);
}

/** kv and untyped-metadata keys follow the name rule and are never reserved; untyped keys also may not hold the ':' that ends them. */
function checkKey(kind: 'kv key' | 'untyped metadata key', key: string): void {
  const problem = nameProblem(key) ?? reservedKeyProblem(key) ?? (kind === 'untyped metadata key' && key.includes(':') ? "it contains ':'" : undefined);
  if (problem) throw invalidInput(`invalid ${kind} ${JSON.stringify(key)}: ${problem}; keys are ${NAME_RULE}${kind === 'untyped metadata key' ? ", without ':'" : ''}`);
}

function checkNumber(number: number | undefined): void {
  if (number !== undefined && !(Number.isInteger(number) && number >= 0 && number <= 2147483647)) {
    throw invalidInput(`invalid number ${number}: give a whole number from 1 to 2147483647, or 0 for the next free one`);
  }
}

function checkCapability(value: string): asserts value is Capability {
  if (!(CAPABILITIES as readonly string[]).includes(value)) throw invalidInput(`unknown capability ${JSON.stringify(value)}; capabilities are ${CAPABILITIES.join(', ')}`);
}

function checkExpansionShape(e: Expansion): void {
  if (!(EXPANSION_MODES as readonly string[]).includes(e.mode)) throw invalidInput(`unknown expansion mode ${JSON.stringify(e.mode)}; modes are ${EXPANSION_MODES.join(', ')}`);
  checkName('group name', e.group);
}

function checkSecret(secret: string): void {
  const length = [...secret].length;
  if (length === 0 || length > MAX_SECRET_LENGTH) throw invalidInput(`a secret must be 1 to ${MAX_SECRET_LENGTH} characters, not ${length}`);
}

/** Only the given fields of `patch`, each a string. */
function checkPatch(patch: object, fields: readonly string[]): void {
  for (const [field, value] of Object.entries(patch)) {
    if (!fields.includes(field)) throw invalidInput(`cannot set ${JSON.stringify(field)} here; the fields are ${fields.join(', ')}`);
    if (typeof value !== 'string') throw invalidInput(`${field} must be a string`);
  }
}

/** A schema check of request input; its SchemaError becomes KH_ERR_INVALID_INPUT with the path. */
function parsed<T>(parse: (value: unknown) => T, value: unknown): T {
  try {
    return parse(value);
  } catch (err) {
    if (err instanceof SchemaError) throw invalidInput(err.message);
    throw err;
  }
}

/** Request data for hooks: a JSON copy, so no hook can reach into the caller's objects. */
function json(value: object): JsonObject {
  return JSON.parse(JSON.stringify(value)) as JsonObject;
}

/** Entities as the API and hooks see them: never with the secret hash. */
function withoutSecret(entity: Entity): Entity {
  return { ...entity, secret: '' };
}

// Shared by entities and groups: untyped metadata, kv and set-like lists change the same way.

function applyUntyped(entries: string[], change: UntypedMetaChange): string[] {
  switch (change.action) {
    case 'upsert':
      return upsertUntyped(entries, change.key, change.value);
    case 'clear-fuzzy':
      return clearUntypedFuzzy(entries, change.key);
    case 'clear-exact':
      return clearUntypedExact(entries, change.key);
  }
}

function applyKv(kv: Record<string, KVValues>, change: KvChange): Record<string, KVValues> {
  const exists = Object.hasOwn(kv, change.key);
  if (change.action === 'add' && exists) throw new KeyholdError('KH_ERR_KV_KEY_EXISTS', `kv key "${change.key}" already exists; replace it instead`);
  if (change.action !== 'add' && !exists) throw new KeyholdError('KH_ERR_KV_KEY_NOT_FOUND', `no kv key "${change.key}"`);
  const next = { ...kv };
  if (change.action === 'delete') delete next[change.key];
  else next[change.key] = { values: [...change.values] };
  return next;
}

/** Adding a present value or removing an absent one changes nothing (both are idempotent). */
function applySet<T>(list: readonly T[], change: SetChange<T>): T[] {
  if (change.action === 'add') return list.includes(change.value) ? [...list] : [...list, change.value];
  return list.filter((v) => v !== change.value);
}

function checkUntypedChange(change: UntypedMetaChange): void {
  checkKey('untyped metadata key', change.key);
}

function checkKvChange(change: KvChange): void {
  checkKey('kv key', change.key);
  if (change.action !== 'delete' && !(Array.isArray(change.values) && change.values.every((v) => typeof v === 'string'))) throw invalidInput('kv values must be a list of strings');
}

function kvValue(kv: Record<string, KVValues>, key: string): KVValues {
  const values = Object.hasOwn(kv, key) ? kv[key] : undefined;
  if (!values) throw new KeyholdError('KH_ERR_KV_KEY_NOT_FOUND', `no kv key "${key}"`);
  return values;
}

async function loadEntity(reader: StoreReader, id: string): Promise<Entity> {
  const entity = await reader.getEntity(id);
  if (!entity) throw new KeyholdError('KH_ERR_ENTITY_NOT_FOUND', `no entity "${id}"`, { id });
  return entity;
}

async function loadGroup(reader: StoreReader, name: string): Promise<Group> {
  const group = await reader.getGroup(name);
  if (!group) throw new KeyholdError('KH_ERR_GROUP_NOT_FOUND', `no group "${name}"`, { name });
  return group;
}

/** The data checks every stored group passes: managedBy names another group and leads back to none, expansions are sound. */
async function checkGroup(tx: StoreTransaction, group: Group): Promise<void> {
  // A group naming itself (not stored yet when created) is refused as a managedBy cycle instead.
  if (group.managedBy !== '' && group.managedBy !== group.name) await loadGroup(tx, group.managedBy);
  await checkManagedBy(tx, group);
  await checkExpansions(tx, group);
}

async function saveGroup(tx: StoreTransaction, group: Group): Promise<void> {
  await checkGroup(tx, group);
  await tx.updateGroup(group);
}

/**
 * Saving a locked entity also replaces its token generation, so that its tokens are revoked and do
 * not come back on unlock, whatever locked it (the lock operation or a plugin's hook). No token
 * can be issued while it is locked, so none is lost that should live.
 */
async function saveEntity(tx: StoreTransaction, entity: Entity): Promise<void> {
  await tx.updateEntity(entity);
  if (entity.meta.locked) await tx.renewTokenGeneration(entity.id);
}

/** A plugin's veto of an AuthCheck is a refused login like any other (the client is not told which plugin, nor that one did); crashes and timeouts stay 5xx. */
function asLoginRefusal(err: unknown): unknown {
  if (!isKeyholdError(err) || err.code !== 'KH_ERR_PLUGIN_VETO') return err;
  return new AuthFailed('plugin_veto', { ...err.details });
}

/** Marks an operation that changes what its subject can do: protection.ts's rules apply. */
const PROTECTED = true;

export interface IdentityOptions {
  hash?: Partial<HashParams>;
  /** The bound on concurrent argon2 work (default: DEFAULT_HASH_SLOTS, no metrics). */
  slots?: HashSlots;
}

export class Identity implements IdentityOperations {
  private readonly hashParams: HashParams;
  private readonly slots: HashSlots;
  /** A hash of a random secret: what an unknown entity's secret is checked against, so it costs the same time. */
  private dummyHash?: Promise<string>;

  constructor(
    private readonly store: Store,
    private readonly engine: LifecycleEngine,
    options: IdentityOptions = {},
  ) {
    this.hashParams = resolveHashParams(options.hash);
    this.slots = options.slots ?? new HashSlots();
  }

  // Entities

  async createEntity(info: RequestInfo, input: CreateEntityInput): Promise<Entity> {
    checkName('entity id', input.id);
    checkNumber(input.number);
    checkPatch(input.meta ?? {}, ENTITY_META_FIELDS);
    if (input.secret !== undefined) checkSecret(input.secret);
    (input.capabilities ?? []).forEach(checkCapability);
    const requested = parsed(parseEntity, { id: input.id, number: input.number ?? 0, meta: { ...input.meta, capabilities: input.capabilities ?? [] } });
    const create: LifecycleStep<Entity> = {
      point: 'EntityCreate',
      operation: 'entity.create',
      request: {},
      load: () => Promise.resolve(requested),
      change: (tx, entity) => tx.insertEntity(entity),
      save: saveEntity,
    };
    if (input.secret === undefined) return this.engine.run(create, info);
    // An initial secret is a SecretChange in the same transaction, so its hooks (a password policy) see it too.
    // Hashed before the transaction so that the ~40 ms hash does not hold the write lock.
    const setSecret = this.secretStep(info, input.id, input.secret, await this.hash(input.secret));
    return (await this.engine.runAll([create, setSecret], info)) as Entity;
  }

  async entityInfo(id: string): Promise<Entity> {
    return withoutSecret(await loadEntity(this.store.reader, id));
  }

  async searchEntities(query: SearchQuery): Promise<Entity[]> {
    return (await this.store.reader.searchEntities(query)).map(withoutSecret);
  }

  async updateEntityMeta(info: RequestInfo, id: string, patch: EntityMetaPatch): Promise<Entity> {
    checkPatch(patch, ENTITY_META_FIELDS);
    return this.changeEntity(info, 'EntityUpdate', 'entity.update-meta', id, { patch }, (e) => ({ ...e, meta: { ...e.meta, ...patch } }));
  }

  async entityUntypedMeta(info: RequestInfo, id: string, change: UntypedMetaChange): Promise<Entity> {
    checkUntypedChange(change);
    return this.changeEntity(info, 'EntityUpdate', 'entity.untyped-meta', id, { change }, (e) => ({ ...e, meta: { ...e.meta, untypedMeta: applyUntyped(e.meta.untypedMeta, change) } }));
  }

  async entityKv(info: RequestInfo, id: string, change: KvChange): Promise<Entity> {
    checkKvChange(change);
    return this.changeEntity(info, 'EntityUpdate', 'entity.kv', id, { change }, (e) => ({ ...e, meta: { ...e.meta, kv: applyKv(e.meta.kv, change) } }));
  }

  async entityKvGet(id: string, key: string): Promise<KVValues> {
    return kvValue((await loadEntity(this.store.reader, id)).meta.kv, key);
  }

  async entityKeys(info: RequestInfo, id: string, change: SetChange<string>): Promise<Entity> {
    if (typeof change.value !== 'string' || change.value.trim() === '' || /\p{Cc}/u.test(change.value)) throw invalidInput('a key must be a non-empty line of text');
    return this.changeEntity(info, 'EntityUpdate', 'entity.keys', id, { change }, (e) => ({ ...e, meta: { ...e.meta, keys: applySet(e.meta.keys, change) } }), PROTECTED);
  }

  async entityCapabilities(info: RequestInfo, id: string, change: SetChange<Capability>): Promise<Entity> {
    checkCapability(change.value);
    return this.changeEntity(info, 'EntityUpdate', 'entity.capabilities', id, { change }, (e) => ({ ...e, meta: { ...e.meta, capabilities: applySet(e.meta.capabilities, change) } }), PROTECTED);
  }

  async lockEntity(info: RequestInfo, id: string): Promise<Entity> {
    return this.changeEntity(info, 'EntityLock', 'entity.lock', id, {}, (e) => ({ ...e, meta: { ...e.meta, locked: true } }), PROTECTED);
  }

  async unlockEntity(info: RequestInfo, id: string): Promise<Entity> {
    return this.changeEntity(info, 'EntityUnlock', 'entity.unlock', id, {}, (e) => ({ ...e, meta: { ...e.meta, locked: false } }), PROTECTED);
  }

  destroyEntity(info: RequestInfo, id: string): Promise<void> {
    return this.destroyStep(info, 'EntityDestroy', 'entity.destroy', { entity: id }, (tx) => loadEntity(tx, id), (tx) => tx.deleteEntity(id));
  }

  async setSecret(info: RequestInfo, id: string, secret: string): Promise<void> {
    checkSecret(secret);
    await this.engine.run(this.secretStep(info, id, secret, await this.hash(secret)), info);
  }

  /** SecretChange: the plain text goes to its hooks only (a password policy needs it), never further. */
  private secretStep(info: RequestInfo, id: string, secret: string, hash: string): LifecycleStep<Entity> {
    // A new secret revokes every token issued under the old one (same transaction: both or neither).
    const change = async (tx: StoreTransaction, e: Entity) => (await tx.renewTokenGeneration(id), { ...e, secret: hash });
    return this.updateStep('SecretChange', 'entity.set-secret', { secret }, (tx) => loadEntity(tx, id), change, saveEntity, guardChange(info, [{ entity: id }]));
  }

  async authCheck(info: RequestInfo, id: string, secret: string): Promise<Entity> {
    // The hash is checked before the transaction (not to hold the write lock for it); inside, the
    // verdict is reused if the stored hash is still the one checked, and checked again otherwise.
    const verdict = await this.verify(await this.store.reader.getEntity(id), secret);
    // The upgrade waits for a calmer moment when the argon2 queue is full: it must not fail a right secret.
    const rehashed = verdict.ok && needsRehash(verdict.hash, this.hashParams) ? await this.hash(secret).catch((err: unknown) => (isKeyholdError(err) && err.code === 'KH_ERR_BUSY' ? undefined : Promise.reject(err))) : undefined;
    let loaded: Entity | undefined;
    // Every refusal below is the same AuthFailed for the client; its reason is for the log and metrics.
    const checked = this.engine.run(
      {
        point: 'AuthCheck',
        operation: 'auth.check',
        request: {},
        load: async (tx) => {
          loaded = await tx.getEntity(id);
          if (!loaded) throw new AuthFailed('unknown');
          return loaded;
        },
        change: async (tx, entity) => {
          // Locked (by an operator, or for this request by a PRE hook such as fail2lock): the hash was checked above all the same, so the time does not tell.
          if (entity.meta.locked) throw new AuthFailed('locked');
          const unchanged = entity.secret === verdict.hash;
          if (!(unchanged ? verdict : await this.verify(entity, secret)).ok) throw new AuthFailed('wrong_secret');
          // Stored with weaker parameters than today's: upgraded now that the plain text is known.
          const next = unchanged && rehashed ? { ...entity, secret: rehashed } : entity;
          // Written only when something changed (a PRE hook's edit, a new hash): most logins write nothing.
          if (!jsonEqual(next, loaded)) await saveEntity(tx, next);
          return next;
        },
        save: saveEntity,
      },
      info,
    );
    return checked.catch((err: unknown) => Promise.reject(asLoginRefusal(err)));
  }

  async entityGroups(id: string, options: { indirect: boolean }): Promise<string[]> {
    const entity = await loadEntity(this.store.reader, id);
    return options.indirect ? (await resolveGroupsOf(this.store.reader, entity.meta.groups)).map((g) => g.name) : entity.meta.groups;
  }

  async effectiveCapabilities(id: string): Promise<Capability[]> {
    return capabilitiesHeld(this.store.reader, await loadEntity(this.store.reader, id));
  }

  // Groups

  async createGroup(info: RequestInfo, input: CreateGroupInput): Promise<Group> {
    checkName('group name', input.name);
    checkNumber(input.number);
    if (input.managedBy) checkName('group name', input.managedBy);
    (input.capabilities ?? []).forEach(checkCapability);
    (input.expansions ?? []).forEach(checkExpansionShape);
    const requested = parsed(parseGroup, { ...input, number: input.number ?? 0 });
    return this.engine.run(
      {
        point: 'GroupCreate',
        operation: 'group.create',
        request: {},
        load: () => Promise.resolve(requested),
        change: async (tx, group) => {
          await checkGroup(tx, group);
          return tx.insertGroup(group);
        },
        save: saveGroup,
      },
      info,
    );
  }

  async groupInfo(name: string): Promise<Group> {
    return loadGroup(this.store.reader, name);
  }

  searchGroups(query: SearchQuery): Promise<Group[]> {
    return this.store.reader.searchGroups(query);
  }

  async updateGroup(info: RequestInfo, name: string, patch: GroupPatch): Promise<Group> {
    checkPatch(patch, ['displayName', 'managedBy']);
    // Who manages a group decides its membership: a protected change; its display name is not.
    return this.changeGroup(info, 'group.update', name, { patch }, (g) => ({ ...g, ...patch }), patch.managedBy !== undefined);
  }

  async groupUntypedMeta(info: RequestInfo, name: string, change: UntypedMetaChange): Promise<Group> {
    checkUntypedChange(change);
    return this.changeGroup(info, 'group.untyped-meta', name, { change }, (g) => ({ ...g, untypedMeta: applyUntyped(g.untypedMeta, change) }));
  }

  async groupKv(info: RequestInfo, name: string, change: KvChange): Promise<Group> {
    checkKvChange(change);
    return this.changeGroup(info, 'group.kv', name, { change }, (g) => ({ ...g, kv: applyKv(g.kv, change) }));
  }

  async groupKvGet(name: string, key: string): Promise<KVValues> {
    return kvValue((await loadGroup(this.store.reader, name)).kv, key);
  }

  async groupCapabilities(info: RequestInfo, name: string, change: SetChange<Capability>): Promise<Group> {
    checkCapability(change.value);
    return this.changeGroup(info, 'group.capabilities', name, { change }, (g) => ({ ...g, capabilities: applySet(g.capabilities, change) }), PROTECTED);
  }

  async groupExpansions(info: RequestInfo, name: string, change: SetChange<Expansion>): Promise<Group> {
    checkExpansionShape(change.value);
    const { mode, group: target } = change.value;
    const expand = (g: Group): Group => {
      if (change.action === 'add') return { ...g, expansions: [...g.expansions, { mode, group: target }] };
      if (!g.expansions.some((e) => e.mode === mode && e.group === target)) {
        throw new KeyholdError('KH_ERR_EXPANSION_NOT_FOUND', `group "${name}" has no ${mode} expansion of "${target}"`);
      }
      return { ...g, expansions: g.expansions.filter((e) => !(e.mode === mode && e.group === target)) };
    };
    return this.changeGroup(info, 'group.expansions', name, { change }, expand, PROTECTED);
  }

  async addMember(info: RequestInfo, group: string, entityId: string): Promise<Entity> {
    return this.changeMembership(info, 'MembershipAdd', group, entityId, async (tx, entity) => {
      if (entity.meta.groups.includes(group)) throw new KeyholdError('KH_ERR_ALREADY_MEMBER', `"${entityId}" is already a direct member of "${group}"`);
      await tx.addMembership(entityId, group);
      return [...entity.meta.groups, group].sort();
    });
  }

  async removeMember(info: RequestInfo, group: string, entityId: string): Promise<Entity> {
    return this.changeMembership(info, 'MembershipRemove', group, entityId, async (tx, entity) => {
      if (!entity.meta.groups.includes(group)) throw new KeyholdError('KH_ERR_NOT_A_MEMBER', `"${entityId}" is not a direct member of "${group}"`);
      await tx.removeMembership(entityId, group);
      return entity.meta.groups.filter((g) => g !== group);
    });
  }

  async groupMembers(name: string): Promise<string[]> {
    await loadGroup(this.store.reader, name);
    return resolveMembers(this.store.reader, name);
  }

  destroyGroup(info: RequestInfo, name: string): Promise<void> {
    // The database refuses while other groups expand or are managed by this one (KH_ERR_GROUP_IN_USE naming them).
    return this.destroyStep(info, 'GroupDestroy', 'group.destroy', { group: name }, (tx) => loadGroup(tx, name), (tx) => tx.deleteGroup(name));
  }

  // The shared shapes of the steps above.

  /**
   * Load, apply `mutate` to PRE's output and save it; POST's output is saved the same way. With a
   * `guard` (a change to what the subjects can do), its rules hold before the change and after each save.
   */
  private updateStep<S extends Subject>(
    point: LifecyclePoint,
    operation: string,
    request: object,
    load: (tx: StoreTransaction) => Promise<S>,
    mutate: (tx: StoreTransaction, subject: S) => S | Promise<S>,
    save: (tx: StoreTransaction, subject: S) => Promise<void>,
    guard?: ChangeGuard,
  ): LifecycleStep<S> {
    const guardedSave = async (tx: StoreTransaction, subject: S) => {
      await save(tx, subject);
      await guard?.after(tx);
    };
    return {
      point,
      operation,
      request: json(request),
      load,
      change: async (tx, subject) => {
        await guard?.before(tx);
        const next = await mutate(tx, subject);
        await guardedSave(tx, next);
        return next;
      },
      save: guardedSave,
    };
  }

  /** EntityUpdate/Lock/Unlock; `protect`: the operation changes what the entity can do (protection.ts). */
  private changeEntity(info: RequestInfo, point: LifecyclePoint, operation: string, id: string, request: object, mutate: (entity: Entity) => Entity, protect = false): Promise<Entity> {
    const guard = protect ? guardChange(info, [{ entity: id }]) : undefined;
    return this.engine.run(this.updateStep(point, operation, request, (tx) => loadEntity(tx, id), (_tx, entity) => mutate(entity), saveEntity, guard), info);
  }

  /** GroupUpdate; the group is checked (managedBy, expansions) before each save; `protect` as for changeEntity. */
  private changeGroup(info: RequestInfo, operation: string, name: string, request: object, mutate: (group: Group) => Group, protect = false): Promise<Group> {
    const guard = protect ? guardChange(info, [{ group: name }]) : undefined;
    return this.engine.run(this.updateStep('GroupUpdate', operation, request, (tx) => loadGroup(tx, name), (_tx, group) => mutate(group), saveGroup, guard), info);
  }

  /** MembershipAdd/Remove: the entity is the subject, the group is in the request; `apply` returns the new direct groups. Both are protected. */
  private changeMembership(
    info: RequestInfo,
    point: 'MembershipAdd' | 'MembershipRemove',
    group: string,
    entityId: string,
    apply: (tx: StoreTransaction, entity: Entity) => Promise<string[]>,
  ): Promise<Entity> {
    const operation = point === 'MembershipAdd' ? 'group.add-member' : 'group.remove-member';
    const step = this.updateStep(
      point,
      operation,
      { group },
      (tx) => loadEntity(tx, entityId),
      async (tx, entity) => {
        await loadGroup(tx, group);
        return { ...entity, meta: { ...entity.meta, groups: await apply(tx, entity) } };
      },
      saveEntity,
      guardChange(info, [{ entity: entityId }, { group }]),
    );
    return this.engine.run(step, info);
  }

  /** Load, then delete (a protected change of `subject`); POST hooks see the object as it was, and nothing of theirs is saved. */
  private async destroyStep<S extends Subject>(
    info: RequestInfo,
    point: 'EntityDestroy' | 'GroupDestroy',
    operation: string,
    subject: ProtectedSubject,
    load: (tx: StoreTransaction) => Promise<S>,
    remove: (tx: StoreTransaction) => Promise<void>,
  ): Promise<void> {
    const guard = guardChange(info, [subject]);
    const change = async (tx: StoreTransaction, loaded: S) => {
      await guard.before(tx);
      await remove(tx);
      await guard.after(tx);
      return loaded;
    };
    await this.engine.run({ point, operation, request: {}, load, change }, info);
  }

  private hash(secret: string): Promise<string> {
    return this.slots.run('hash', () => hashSecret(secret, this.hashParams));
  }

  /** Checks `secret` against the entity's hash, or against a dummy hash when there is none, so both cost the same. */
  private async verify(entity: Entity | undefined, secret: string): Promise<{ hash: string; ok: boolean }> {
    const hash = entity?.secret ?? '';
    // Made once, outside the slots: a refusal (KH_ERR_BUSY) must not be remembered as the dummy hash.
    this.dummyHash ??= hashSecret(randomBytes(32).toString('base64'), this.hashParams);
    const against = hash || (await this.dummyHash);
    const ok = await this.slots.run('verify', () => verifySecret(against, secret));
    return { hash, ok: ok && hash !== '' };
  }
}
