// The identity operations: the facade the API layer uses (IdentityOperations). Each mutating
// operation is one LifecycleStep run by the lifecycle engine, built in entity-steps.ts,
// group-steps.ts, auth-check.ts or steps.ts (the shared shapes): input checks that need no data
// (input-checks.ts) happen before the step starts; checks against the data (exists, member,
// cycles, the authorization rules of protection.ts) happen on the change, after PRE hooks, and
// again in the commit transaction, against the data as committed. Reads go to the store directly.
import { parseEntity, parseGroup, type Capability, type Entity, type Expansion, type Group, type KVValues } from 'keyhold-plugin-sdk';
import { KeyholdError } from '../errors.js';
import type { LifecycleEngine, RequestInfo } from '../lifecycle/engine.js';
import type { SearchQuery, Store } from '../store/store.js';
import { asLoginRefusal, authCheckStep } from './auth-check.js';
import { entityChangeStep, secretStep } from './entity-steps.js';
import { applyKv, applySet, applyUntyped, checkKvChange, checkUntypedChange, kvValue } from './changes.js';
import { capabilitiesHeld, resolveGroupsOf, resolveMembers } from './expansions.js';
import { groupChangeStep, membershipStep } from './group-steps.js';
import { HashSlots } from './hash-slots.js';
import {
  checkCapability,
  checkExpansionShape,
  checkName,
  checkNumber,
  checkPatch,
  checkSecret,
  invalidInput,
  parsed,
} from './input-checks.js';
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
import { resolveHashParams, type HashParams } from './secrets.js';
import { SecretHasher } from './secret-hasher.js';
import { checkGroup, createStep, destroyStep, loadEntity, loadGroup } from './steps.js';

export { MAX_NAME_LENGTH, MAX_SECRET_LENGTH } from './input-checks.js';

/** Marks an operation that changes what its subject can do: protection.ts's rules apply (`!PROTECTED`: they do not). */
const PROTECTED = true;

export interface IdentityOptions {
  hash?: Partial<HashParams>;
  /** The bound on concurrent argon2 work (default: DEFAULT_HASH_SLOTS, no metrics). */
  slots?: HashSlots;
}

export class Identity implements IdentityOperations {
  private readonly hasher: SecretHasher;

  constructor(
    private readonly store: Store,
    private readonly engine: LifecycleEngine,
    options: IdentityOptions = {},
  ) {
    this.hasher = new SecretHasher(resolveHashParams(options.hash), options.slots ?? new HashSlots());
  }

  // Entities

  async createEntity(info: RequestInfo, input: CreateEntityInput): Promise<Entity> {
    checkName('entity id', input.id);
    checkNumber(input.number);
    checkPatch(input.meta ?? {}, ENTITY_META_FIELDS);
    if (input.secret !== undefined) checkSecret(input.secret);
    (input.capabilities ?? []).forEach(checkCapability);
    const requested = parsed(parseEntity, {
      id: input.id,
      number: input.number ?? 0,
      meta: { ...input.meta, capabilities: input.capabilities ?? [] },
    });
    const create = createStep(
      'EntityCreate',
      requested,
      () => Promise.resolve(),
      (tx, entity) => tx.insertEntity(entity),
    );
    if (input.secret === undefined) return this.engine.run(create, info);
    // An initial secret is a SecretChange in the same request and transaction, so its hooks (a password policy) see it too.
    const setSecret = secretStep(info, input.id, input.secret, await this.hasher.hash(input.secret), true);
    return (await this.engine.runAll([create, setSecret], info)) as Entity;
  }

  entityInfo(id: string): Promise<Entity> {
    return loadEntity(this.store.reader, id);
  }

  searchEntities(query: SearchQuery): Promise<Entity[]> {
    return this.store.reader.searchEntities(query);
  }

  async updateEntityMeta(info: RequestInfo, id: string, patch: EntityMetaPatch): Promise<Entity> {
    checkPatch(patch, ENTITY_META_FIELDS);
    return this.engine.run(
      entityChangeStep(
        info,
        'EntityUpdate',
        'entity.update-meta',
        id,
        { patch },
        (e) => ({ ...e, meta: { ...e.meta, ...patch } }),
        !PROTECTED,
      ),
      info,
    );
  }

  async entityUntypedMeta(info: RequestInfo, id: string, change: UntypedMetaChange): Promise<Entity> {
    checkUntypedChange(change);
    return this.engine.run(
      entityChangeStep(
        info,
        'EntityUpdate',
        'entity.untyped-meta',
        id,
        { change },
        (e) => ({ ...e, meta: { ...e.meta, untypedMeta: applyUntyped(e.meta.untypedMeta, change) } }),
        !PROTECTED,
      ),
      info,
    );
  }

  async entityKv(info: RequestInfo, id: string, change: KvChange): Promise<Entity> {
    checkKvChange(change);
    return this.engine.run(
      entityChangeStep(
        info,
        'EntityUpdate',
        'entity.kv',
        id,
        { change },
        (e) => ({ ...e, meta: { ...e.meta, kv: applyKv(e.meta.kv, change) } }),
        !PROTECTED,
      ),
      info,
    );
  }

  async entityKvGet(id: string, key: string): Promise<KVValues> {
    return kvValue((await loadEntity(this.store.reader, id)).meta.kv, key);
  }

  async entityKeys(info: RequestInfo, id: string, change: SetChange<string>): Promise<Entity> {
    if (typeof change.value !== 'string' || change.value.trim() === '' || /\p{Cc}/u.test(change.value))
      throw invalidInput('a key must be a non-empty line of text');
    return this.engine.run(
      entityChangeStep(
        info,
        'EntityUpdate',
        'entity.keys',
        id,
        { change },
        (e) => ({ ...e, meta: { ...e.meta, keys: applySet(e.meta.keys, change) } }),
        PROTECTED,
      ),
      info,
    );
  }

  async entityCapabilities(info: RequestInfo, id: string, change: SetChange<Capability>): Promise<Entity> {
    checkCapability(change.value);
    return this.engine.run(
      entityChangeStep(
        info,
        'EntityUpdate',
        'entity.capabilities',
        id,
        { change },
        (e) => ({ ...e, meta: { ...e.meta, capabilities: applySet(e.meta.capabilities, change) } }),
        PROTECTED,
      ),
      info,
    );
  }

  async lockEntity(info: RequestInfo, id: string): Promise<Entity> {
    return this.engine.run(
      entityChangeStep(info, 'EntityLock', 'entity.lock', id, {}, (e) => ({ ...e, meta: { ...e.meta, locked: true } }), PROTECTED),
      info,
    );
  }

  async unlockEntity(info: RequestInfo, id: string): Promise<Entity> {
    return this.engine.run(
      entityChangeStep(info, 'EntityUnlock', 'entity.unlock', id, {}, (e) => ({ ...e, meta: { ...e.meta, locked: false } }), PROTECTED),
      info,
    );
  }

  async destroyEntity(info: RequestInfo, id: string): Promise<void> {
    await this.engine.run(
      destroyStep(
        info,
        'EntityDestroy',
        { entity: id },
        (reader) => loadEntity(reader, id),
        (tx) => tx.deleteEntity(id),
      ),
      info,
    );
  }

  async setSecret(info: RequestInfo, id: string, secret: string): Promise<void> {
    checkSecret(secret);
    // Hashed before the request takes any lock: the ~40 ms hash holds up no other request.
    await this.engine.run(secretStep(info, id, secret, await this.hasher.hash(secret), false), info);
  }

  authCheck(info: RequestInfo, id: string, secret: string): Promise<Entity> {
    return this.engine.run(authCheckStep(info, id, secret, this.hasher), info).catch((err: unknown) => Promise.reject(asLoginRefusal(err)));
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
      createStep('GroupCreate', requested, checkGroup, (tx, group) => tx.insertGroup(group)),
      info,
    );
  }

  groupInfo(name: string): Promise<Group> {
    return loadGroup(this.store.reader, name);
  }

  searchGroups(query: SearchQuery): Promise<Group[]> {
    return this.store.reader.searchGroups(query);
  }

  async updateGroup(info: RequestInfo, name: string, patch: GroupPatch): Promise<Group> {
    checkPatch(patch, ['displayName', 'managedBy']);
    // Who manages a group decides its membership: a protected change; its display name is not.
    return this.engine.run(
      groupChangeStep(info, 'group.update', name, { patch }, (g) => ({ ...g, ...patch }), patch.managedBy !== undefined),
      info,
    );
  }

  async groupUntypedMeta(info: RequestInfo, name: string, change: UntypedMetaChange): Promise<Group> {
    checkUntypedChange(change);
    return this.engine.run(
      groupChangeStep(
        info,
        'group.untyped-meta',
        name,
        { change },
        (g) => ({ ...g, untypedMeta: applyUntyped(g.untypedMeta, change) }),
        !PROTECTED,
      ),
      info,
    );
  }

  async groupKv(info: RequestInfo, name: string, change: KvChange): Promise<Group> {
    checkKvChange(change);
    return this.engine.run(
      groupChangeStep(info, 'group.kv', name, { change }, (g) => ({ ...g, kv: applyKv(g.kv, change) }), !PROTECTED),
      info,
    );
  }

  async groupKvGet(name: string, key: string): Promise<KVValues> {
    return kvValue((await loadGroup(this.store.reader, name)).kv, key);
  }

  async groupCapabilities(info: RequestInfo, name: string, change: SetChange<Capability>): Promise<Group> {
    checkCapability(change.value);
    return this.engine.run(
      groupChangeStep(
        info,
        'group.capabilities',
        name,
        { change },
        (g) => ({ ...g, capabilities: applySet(g.capabilities, change) }),
        PROTECTED,
      ),
      info,
    );
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
    return this.engine.run(groupChangeStep(info, 'group.expansions', name, { change }, expand, PROTECTED), info);
  }

  async addMember(info: RequestInfo, group: string, entityId: string): Promise<Entity> {
    return this.engine.run(
      membershipStep(info, 'MembershipAdd', group, entityId, (groups) => {
        if (groups.includes(group))
          throw new KeyholdError('KH_ERR_ALREADY_MEMBER', `"${entityId}" is already a direct member of "${group}"`);
        return [...groups, group].sort();
      }),
      info,
    );
  }

  async removeMember(info: RequestInfo, group: string, entityId: string): Promise<Entity> {
    return this.engine.run(
      membershipStep(info, 'MembershipRemove', group, entityId, (groups) => {
        if (!groups.includes(group)) throw new KeyholdError('KH_ERR_NOT_A_MEMBER', `"${entityId}" is not a direct member of "${group}"`);
        return groups.filter((g) => g !== group);
      }),
      info,
    );
  }

  async groupMembers(name: string): Promise<string[]> {
    await loadGroup(this.store.reader, name);
    return resolveMembers(this.store.reader, name);
  }

  async destroyGroup(info: RequestInfo, name: string): Promise<void> {
    // The database refuses while other groups expand or are managed by this one (KH_ERR_GROUP_IN_USE naming them).
    await this.engine.run(
      destroyStep(
        info,
        'GroupDestroy',
        { group: name },
        (reader) => loadGroup(reader, name),
        (tx) => tx.deleteGroup(name),
      ),
      info,
    );
  }
}
