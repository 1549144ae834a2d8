// The identity operations: the facade the API layer uses (IdentityOperations). Each mutating
// operation is one LifecycleStep (steps.ts) run by the lifecycle engine: input checks that need no
// data (input-checks.ts) happen before the step starts; checks against the data (exists, member,
// cycles, the authorization rules of protection.ts) happen on the change, after PRE hooks, and
// again in the commit transaction, against the data as committed.
import { randomBytes } from 'node:crypto';
import { jsonEqual, parseEntity, parseGroup, type Capability, type Entity, type Expansion, type Group, type KVValues, type LifecyclePoint, type OperationAt } from 'keyhold-plugin-sdk';
import { isKeyholdError, KeyholdError } from '../errors.js';
import type { LifecycleEngine, LifecycleStep, RequestInfo } from '../lifecycle/engine.js';
import type { SearchQuery, Store } from '../store/store.js';
import { AuthFailed } from './auth-failure.js';
import { applyKv, applySet, applyUntyped, checkKvChange, checkUntypedChange, kvValue } from './changes.js';
import { capabilitiesHeld, resolveGroupsOf, resolveMembers } from './expansions.js';
import { HashSlots } from './hash-slots.js';
import { checkCapability, checkExpansionShape, checkName, checkNumber, checkPatch, checkSecret, invalidInput, parsed } from './input-checks.js';
import { ENTITY_META_FIELDS, type CreateEntityInput, type CreateGroupInput, type EntityMetaPatch, type GroupPatch, type IdentityOperations, type KvChange, type SetChange, type UntypedMetaChange } from './operations.js';
import { guardChange } from './protection.js';
import { hashSecret, needsRehash, resolveHashParams, verifySecret, type HashParams } from './secrets.js';
import { checkGroup, createStep, destroyStep, entityRef, groupRef, loadEntity, loadGroup, saveEntity, updateStep } from './steps.js';

export { MAX_NAME_LENGTH, MAX_SECRET_LENGTH } from './input-checks.js';

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
    const create = createStep('EntityCreate', requested, () => Promise.resolve(), (tx, entity) => tx.insertEntity(entity));
    if (input.secret === undefined) return this.engine.run(create, info);
    // An initial secret is a SecretChange in the same request and transaction, so its hooks (a password policy) see it too.
    const setSecret = this.secretStep(info, input.id, input.secret, await this.hash(input.secret), true);
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

  async destroyEntity(info: RequestInfo, id: string): Promise<void> {
    await this.engine.run(destroyStep(info, 'EntityDestroy', { entity: id }, (reader) => loadEntity(reader, id), (tx) => tx.deleteEntity(id)), info);
  }

  async setSecret(info: RequestInfo, id: string, secret: string): Promise<void> {
    checkSecret(secret);
    // Hashed before the request takes any lock: the ~40 ms hash holds up no other request.
    await this.engine.run(this.secretStep(info, id, secret, await this.hash(secret), false), info);
  }

  /**
   * SecretChange: the plain text goes to its hooks only (a password policy needs it), never further.
   * `ofCreate`: the step follows the entity's create in the same request (it loads the create's result).
   */
  private secretStep(info: RequestInfo, id: string, secret: string, hash: string, ofCreate: boolean): LifecycleStep<Entity> {
    return updateStep<Entity>({
      point: 'SecretChange',
      operation: 'entity.set-secret',
      request: { secret },
      subjects: [entityRef(id)],
      load: async (reader, previous) => (previous as Entity | undefined) ?? loadEntity(reader, id),
      mutate: (_reader, entity) => entity,
      // A new secret revokes every token issued under the old one (same transaction: both or neither).
      write: async (tx, _loaded, final) => {
        await saveEntity(tx, final);
        await tx.setSecretHash(id, hash);
        await tx.renewTokenGeneration(id);
      },
      guard: guardChange(info, [{ entity: id }]),
      guardEarly: !ofCreate,
    });
  }

  async authCheck(info: RequestInfo, id: string, secret: string): Promise<Entity> {
    // The secret is verified on the load, under the entity's lock only (never the store's write
    // lock): before any hook, so that every refusal (unknown, a plugin's veto, locked, wrong)
    // costs the same verify, and the hash checked is the one stored until the request ends.
    let verdict: { hash: string; ok: boolean } | undefined;
    let upgrade: string | undefined;
    // Every refusal below is the same AuthFailed for the client; its reason is for the log and metrics.
    const checked = this.engine.run(
      {
        point: 'AuthCheck',
        operation: 'auth.check',
        request: {},
        subjects: [entityRef(id)],
        load: async (reader) => {
          const entity = await reader.getEntity(id);
          // An unknown id is checked against the dummy hash: it answers in the same time as a wrong secret.
          verdict = await this.verify(entity && (await reader.secretHash(id)), secret);
          if (!entity) throw new AuthFailed('unknown');
          return entity;
        },
        change: async (_reader, entity) => {
          // Locked (by an operator, or for this request by a PRE hook such as fail2lock): the hash was checked all the same, so the time does not tell.
          if (entity.meta.locked) throw new AuthFailed('locked');
          if (!verdict?.ok) throw new AuthFailed('wrong_secret');
          // Stored with weaker parameters than today's: upgraded now that the plain text is known; when
          // the argon2 queue is full the upgrade waits for a calmer moment: it must not fail a right secret.
          upgrade = needsRehash(verdict.hash, this.hashParams) ? await this.hash(secret).catch((err: unknown) => (isKeyholdError(err) && err.code === 'KH_ERR_BUSY' ? undefined : Promise.reject(err))) : undefined;
          return entity;
        },
        // Written only when something changed (a hook's edit, a new hash): most logins open no write transaction.
        writes: (loaded, final) => upgrade !== undefined || !jsonEqual(final, loaded),
        commit: async (tx, loaded, final) => {
          if (!jsonEqual(final, loaded)) await saveEntity(tx, final);
          if (upgrade !== undefined) await tx.setSecretHash(id, upgrade);
        },
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
    return this.engine.run(createStep('GroupCreate', requested, checkGroup, (tx, group) => tx.insertGroup(group)), info);
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
    return this.changeMembership(info, 'MembershipAdd', group, entityId, (groups) => {
      if (groups.includes(group)) throw new KeyholdError('KH_ERR_ALREADY_MEMBER', `"${entityId}" is already a direct member of "${group}"`);
      return [...groups, group].sort();
    });
  }

  async removeMember(info: RequestInfo, group: string, entityId: string): Promise<Entity> {
    return this.changeMembership(info, 'MembershipRemove', group, entityId, (groups) => {
      if (!groups.includes(group)) throw new KeyholdError('KH_ERR_NOT_A_MEMBER', `"${entityId}" is not a direct member of "${group}"`);
      return groups.filter((g) => g !== group);
    });
  }

  async groupMembers(name: string): Promise<string[]> {
    await loadGroup(this.store.reader, name);
    return resolveMembers(this.store.reader, name);
  }

  async destroyGroup(info: RequestInfo, name: string): Promise<void> {
    // The database refuses while other groups expand or are managed by this one (KH_ERR_GROUP_IN_USE naming them).
    await this.engine.run(destroyStep(info, 'GroupDestroy', { group: name }, (reader) => loadGroup(reader, name), (tx) => tx.deleteGroup(name)), info);
  }

  // The shared shapes of the steps above.

  /** EntityUpdate/Lock/Unlock; `protect`: the operation changes what the entity can do (protection.ts). */
  private changeEntity(info: RequestInfo, point: LifecyclePoint, operation: OperationAt<'EntityUpdate' | 'EntityLock' | 'EntityUnlock'>, id: string, request: object, mutate: (entity: Entity) => Entity, protect = false): Promise<Entity> {
    const step = updateStep<Entity>({
      point,
      operation,
      request,
      subjects: [entityRef(id)],
      load: (reader) => loadEntity(reader, id),
      mutate: (_reader, entity) => mutate(entity),
      write: (tx, _loaded, final) => saveEntity(tx, final),
      guard: protect ? guardChange(info, [{ entity: id }]) : undefined,
    });
    return this.engine.run(step, info);
  }

  /** GroupUpdate; the group is checked (managedBy, expansions) on the change and at commit; `protect` as for changeEntity. */
  private changeGroup(info: RequestInfo, operation: OperationAt<'GroupUpdate'>, name: string, request: object, mutate: (group: Group) => Group, protect = false): Promise<Group> {
    const step = updateStep<Group>({
      point: 'GroupUpdate',
      operation,
      request,
      subjects: [groupRef(name)],
      load: (reader) => loadGroup(reader, name),
      mutate: (_reader, group) => mutate(group),
      check: checkGroup,
      write: (tx, _loaded, final) => tx.updateGroup(final),
      guard: protect ? guardChange(info, [{ group: name }]) : undefined,
    });
    return this.engine.run(step, info);
  }

  /** MembershipAdd/Remove: the entity is the subject, the group is in the request; `apply` returns the new direct groups. Both are protected. */
  private changeMembership(info: RequestInfo, point: 'MembershipAdd' | 'MembershipRemove', group: string, entityId: string, apply: (groups: string[]) => string[]): Promise<Entity> {
    const step = updateStep<Entity>({
      point,
      operation: point === 'MembershipAdd' ? 'group.add-member' : 'group.remove-member',
      request: { group },
      subjects: [entityRef(entityId), groupRef(group)],
      load: (reader) => loadEntity(reader, entityId),
      mutate: async (reader, entity) => {
        await loadGroup(reader, group);
        return { ...entity, meta: { ...entity.meta, groups: apply(entity.meta.groups) } };
      },
      write: async (tx, _loaded, final) => {
        await loadGroup(tx, group);
        await (point === 'MembershipAdd' ? tx.addMembership(entityId, group) : tx.removeMembership(entityId, group));
        await saveEntity(tx, final);
      },
      guard: guardChange(info, [{ entity: entityId }, { group }]),
    });
    return this.engine.run(step, info);
  }

  private hash(secret: string): Promise<string> {
    return this.slots.run('hash', () => hashSecret(secret, this.hashParams));
  }

  /** Checks `secret` against `hash` (undefined: no such entity, '': no secret), or against a dummy hash when there is none, so all cost the same. */
  private async verify(hash: string | undefined, secret: string): Promise<{ hash: string; ok: boolean }> {
    const stored = hash ?? '';
    // Made once, outside the slots: a refusal (KH_ERR_BUSY) must not be remembered as the dummy hash.
    this.dummyHash ??= hashSecret(randomBytes(32).toString('base64'), this.hashParams);
    const against = stored || (await this.dummyHash);
    const ok = await this.slots.run('verify', () => verifySecret(against, secret));
    return { hash: stored, ok: ok && stored !== '' };
  }
}
