// The shapes of the identity operations' lifecycle steps. Each step checks and changes its object
// in memory against the data as read (`change`, before POST hooks, so a refusal costs no plugin
// call more), then writes it in the short commit transaction after checking again, against the
// data as committed, whatever depends on other subjects (references, cycles, managedBy, the
// authorization rules of protection.ts): the hooks ran without any lock on those.
import type { Entity, Group, LifecyclePoint, OperationName } from 'keyhold-plugin-sdk';
import { KeyholdError } from '../errors.js';
import type { Subject } from '../lifecycle/chain.js';
import type { LifecycleStep, RequestInfo } from '../lifecycle/engine.js';
import type { StoreReader, StoreTransaction, SubjectRef } from '../store/store.js';
import { checkExpansions } from './expansions.js';
import { json } from './input-checks.js';
import { checkManagedBy, guardChange, type ChangeGuard, type ProtectedSubject } from './protection.js';

export const entityRef = (id: string): SubjectRef => ({ kind: 'entity', key: id });
export const groupRef = (name: string): SubjectRef => ({ kind: 'group', key: name });

/**
 * What creates with number 0 lock besides their subject: no entity or group has the empty name, so
 * it stands for "the next free number" and two creates in this process never pick the same one.
 */
const nextNumberOf = (kind: SubjectRef['kind']): SubjectRef => ({ kind, key: '' });

export async function loadEntity(reader: StoreReader, id: string): Promise<Entity> {
  const entity = await reader.getEntity(id);
  if (!entity) throw new KeyholdError('KH_ERR_ENTITY_NOT_FOUND', `no entity "${id}"`, { id });
  return entity;
}

export async function loadGroup(reader: StoreReader, name: string): Promise<Group> {
  const group = await reader.getGroup(name);
  if (!group) throw new KeyholdError('KH_ERR_GROUP_NOT_FOUND', `no group "${name}"`, { name });
  return group;
}

/** The data checks every stored group passes: managedBy names another group and leads back to none, expansions are sound. */
export async function checkGroup(reader: StoreReader, group: Group): Promise<void> {
  // A group naming itself (not stored yet when created) is refused as a managedBy cycle instead.
  if (group.managedBy !== '' && group.managedBy !== group.name) await loadGroup(reader, group.managedBy);
  await checkManagedBy(reader, group);
  await checkExpansions(reader, group);
}

/**
 * Saving a locked entity also replaces its token generation, so that its tokens are revoked and do
 * not come back on unlock, whatever locked it (the lock operation or a plugin's hook). No token
 * can be issued while it is locked, so none is lost that should live.
 */
export async function saveEntity(tx: StoreTransaction, entity: Entity): Promise<void> {
  await tx.updateEntity(entity);
  if (entity.meta.locked) await tx.renewTokenGeneration(entity.id);
}

/** EntityCreate / GroupCreate: the object as requested; it must not exist yet, and gets the next free number when it asked for 0. */
export function createStep<S extends Entity | Group>(
  point: 'EntityCreate' | 'GroupCreate',
  requested: S,
  check: (reader: StoreReader, subject: S) => Promise<void>,
  insert: (tx: StoreTransaction, subject: S) => Promise<unknown>,
): LifecycleStep<S> {
  const [kind, key] = 'id' in requested ? (['entity', requested.id] as const) : (['group', requested.name] as const);
  // The number chosen for a request that asked for 0, which its hooks saw.
  let picked: number | undefined;
  return {
    point,
    operation: point === 'EntityCreate' ? 'entity.create' : 'group.create',
    request: {},
    subjects: [{ kind, key }, ...(requested.number === 0 ? [nextNumberOf(kind)] : [])],
    load: () => Promise.resolve(requested),
    change: async (reader, subject) => {
      if ((await reader.version({ kind, key })) !== undefined)
        throw new KeyholdError(
          kind === 'entity' ? 'KH_ERR_ENTITY_EXISTS' : 'KH_ERR_GROUP_EXISTS',
          `${kind === 'entity' ? 'an entity' : 'a group'} "${key}" already exists`,
        );
      await check(reader, subject);
      if (subject.number !== 0) return subject;
      picked = await reader.nextNumber(kind);
      return { ...subject, number: picked };
    },
    commit: async (tx, _loaded, final) => {
      await check(tx, final);
      // Another server may have taken the number chosen before the hooks ran (this server's own creates are kept apart by
      // nextNumberOf): then the next free one is written instead, chosen here, where writes are serialised across servers.
      // POST hooks saw the number proposed; the answer and the committed event carry the one written.
      if (final.number === picked) final.number = Math.max(picked, await tx.nextNumber(kind));
      await insert(tx, final);
    },
  };
}

/** What an update step is made of. */
export interface UpdateShape<S extends Subject> {
  point: LifecyclePoint;
  operation: OperationName;
  request: object;
  /** The subjects it reads and writes (the first is the one hooks see). */
  subjects: readonly SubjectRef[];
  load(reader: StoreReader, previous: Subject | undefined): Promise<S>;
  /** The change, applied to PRE's output in memory; may read to refuse it (e.g. not a member). */
  mutate(reader: StoreReader, subject: S): S | Promise<S>;
  /** Checks of the changed object against other data: on the change, and again at commit on what is written. */
  check?(reader: StoreReader, subject: S): Promise<void>;
  /** Writes the final object (POST's output) at commit. */
  write(tx: StoreTransaction, loaded: S, final: S): Promise<void>;
  /** A change to what the subjects can do (protection.ts): its rules hold before the change and after the write. */
  guard?: ChangeGuard;
  /** False when the subject may not be stored yet at the change (the SecretChange of a create): its rules are then checked at commit only. */
  guardEarly?: boolean;
}

export function updateStep<S extends Subject>(shape: UpdateShape<S>): LifecycleStep<S> {
  const { guard, check } = shape;
  return {
    point: shape.point,
    operation: shape.operation,
    request: json(shape.request),
    subjects: shape.subjects,
    load: shape.load,
    change: async (reader, subject) => {
      if (shape.guardEarly !== false) await guard?.before(reader);
      const next = await shape.mutate(reader, subject);
      await check?.(reader, next);
      return next;
    },
    commit: async (tx, loaded, final) => {
      await guard?.before(tx);
      await check?.(tx, final);
      await shape.write(tx, loaded, final);
      await guard?.after(tx);
    },
  };
}

/** Load, then delete (a protected change of `subject`); POST hooks see the object as it was, and nothing of theirs is saved. */
export function destroyStep<S extends Subject>(
  info: RequestInfo,
  point: 'EntityDestroy' | 'GroupDestroy',
  subject: ProtectedSubject,
  load: (reader: StoreReader) => Promise<S>,
  remove: (tx: StoreTransaction) => Promise<void>,
): LifecycleStep<S> {
  const guard = guardChange(info, [subject]);
  return {
    point,
    operation: point === 'EntityDestroy' ? 'entity.destroy' : 'group.destroy',
    request: {},
    subjects: ['entity' in subject ? entityRef(subject.entity) : groupRef(subject.group)],
    load,
    change: async (reader, loaded) => {
      await guard.before(reader);
      return loaded;
    },
    commit: async (tx) => {
      await guard.before(tx);
      await remove(tx);
      await guard.after(tx);
    },
  };
}
