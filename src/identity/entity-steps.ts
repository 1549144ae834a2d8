// The steps that change an entity: its metadata, lock state (EntityUpdate/Lock/Unlock) and its
// secret (SecretChange). Built on steps.ts's update shape.
import type { Entity, LifecyclePoint, OperationAt } from 'keyhold-plugin-sdk';
import type { LifecycleStep, RequestInfo } from '../lifecycle/engine.js';
import { guardChange } from './protection.js';
import { entityRef, loadEntity, saveEntity, updateStep } from './steps.js';

/** EntityUpdate/Lock/Unlock: `mutate` applied to PRE's output; `protect`: the operation changes what the entity can do (protection.ts). */
export function entityChangeStep(
  info: RequestInfo,
  point: LifecyclePoint,
  operation: OperationAt<'EntityUpdate' | 'EntityLock' | 'EntityUnlock'>,
  id: string,
  request: object,
  mutate: (entity: Entity) => Entity,
  protect: boolean,
): LifecycleStep<Entity> {
  return updateStep<Entity>({
    point,
    operation,
    request,
    subjects: [entityRef(id)],
    load: (reader) => loadEntity(reader, id),
    mutate: (_reader, entity) => mutate(entity),
    write: (tx, _loaded, final) => saveEntity(tx, final),
    guard: protect ? guardChange(info, [{ entity: id }]) : undefined,
  });
}

/**
 * SecretChange: the plain text goes to its hooks only (a password policy needs it), never further;
 * `hash` is what is stored. `ofCreate`: the step follows the entity's create in the same request
 * (it loads the create's result, and the entity exists only in that request's commit).
 */
export function secretStep(info: RequestInfo, id: string, secret: string, hash: string, ofCreate: boolean): LifecycleStep<Entity> {
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
