// The steps that change a group (GroupUpdate) and who is in one (MembershipAdd/Remove, whose
// subject is the entity). Built on steps.ts's update shape.
import type { Entity, Group, OperationAt } from 'keyhold-plugin-sdk';
import type { LifecycleStep, RequestInfo } from '../lifecycle/engine.js';
import { guardChange } from './protection.js';
import { checkGroup, entityRef, groupRef, loadEntity, loadGroup, saveEntity, updateStep } from './steps.js';

/** GroupUpdate: `mutate` applied to PRE's output; the group is checked (managedBy, expansions) on the change and at commit; `protect` as for entities. */
export function groupChangeStep(
  info: RequestInfo,
  operation: OperationAt<'GroupUpdate'>,
  name: string,
  request: object,
  mutate: (group: Group) => Group,
  protect: boolean,
): LifecycleStep<Group> {
  return updateStep<Group>({
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
}

/** MembershipAdd/Remove: `apply` returns the entity's new direct groups (or refuses); both are protected changes of the entity and the group. */
export function membershipStep(
  info: RequestInfo,
  point: 'MembershipAdd' | 'MembershipRemove',
  group: string,
  entityId: string,
  apply: (groups: string[]) => string[],
): LifecycleStep<Entity> {
  return updateStep<Entity>({
    point,
    operation: point === 'MembershipAdd' ? 'group.add-member' : 'group.remove-member',
    request: { group },
    subjects: [entityRef(entityId), groupRef(group)],
    load: (reader) => loadEntity(reader, entityId),
    mutate: async (reader, entity) => {
      await loadGroup(reader, group);
      return { ...entity, meta: { ...entity.meta, groups: apply(entity.meta.groups) } };
    },
    // The group must still exist; the database refuses a membership already there or already gone.
    write: async (tx, _loaded, final) => {
      await loadGroup(tx, group);
      await (point === 'MembershipAdd' ? tx.addMembership(entityId, group) : tx.removeMembership(entityId, group));
      await saveEntity(tx, final);
    },
    guard: guardChange(info, [{ entity: entityId }, { group }]),
  });
}
