// The authorization rules that depend on the data. A route's own capability is checked before the
// request body is even read (src/api/access.ts); these rules need the data, so the identity
// operations check them in the step's change stage, inside the write transaction, against the data
// as it will be committed: nothing can change between the check and the write.
//
// - Protected subjects (as Active Directory's AdminSDHolder and Kanidm's high-privilege accounts):
//   an operation that changes what an entity or group can do needs every capability that subject
//   holds or confers, besides its own. Otherwise every lesser capability that can touch a
//   privileged subject is a path to its privileges: reset root's secret and log in as root, join
//   the root group, make the root group include one's own group, or manage it.
// - The last GLOBAL_ROOT holder: no change may leave no unlocked entity holding GLOBAL_ROOT, or
//   no one could administer the server any more.
// - managedBy never loops: a group managing itself, directly or through a chain, would let its
//   members decide their own membership.
import { CAPABILITIES, type Capability, type Group } from 'keyhold-plugin-sdk';
import { KeyholdError } from '../errors.js';
import type { RequestInfo } from '../lifecycle/engine.js';
import type { StoreReader } from '../store/store.js';
import { capabilitiesHeld, resolveMembers } from './expansions.js';

/** Something whose abilities an operation changes: an entity by id, or a group by name. */
export type ProtectedSubject = { entity: string } | { group: string };

function describe(subject: ProtectedSubject): string {
  return 'entity' in subject ? `entity "${subject.entity}"` : `group "${subject.group}"`;
}

/**
 * What changing who is in `name`, what it expands or who manages it can change: the group's own
 * capabilities plus those of every group expanding it, transitively. Both modes count: an INCLUDE
 * passes the expanding group's capabilities on, an EXCLUDE takes them away (adding someone to a
 * group the root group excludes takes GLOBAL_ROOT from them).
 */
export async function capabilitiesConferred(reader: StoreReader, name: string): Promise<Capability[]> {
  const conferred = new Set<Capability>();
  const groups = new Set([name]);
  // Breadth-first upwards; every group is queued once, so this ends even on a cycle in the data.
  for (const current of groups) {
    const group = await reader.getGroup(current);
    if (!group) throw new KeyholdError('KH_ERR_GROUP_NOT_FOUND', `no group "${current}"`, { name: current });
    group.capabilities.forEach((c) => conferred.add(c));
    for (const parent of await reader.groupsExpanding(current)) groups.add(parent);
  }
  return CAPABILITIES.filter((c) => conferred.has(c));
}

/** What `subject` holds (an entity: its effective capabilities) or confers (a group), from the data as it stands. */
async function capabilitiesOf(reader: StoreReader, subject: ProtectedSubject): Promise<Capability[]> {
  if ('group' in subject) return capabilitiesConferred(reader, subject.group);
  const entity = await reader.getEntity(subject.entity);
  if (!entity) throw new KeyholdError('KH_ERR_ENTITY_NOT_FOUND', `no entity "${subject.entity}"`, { id: subject.entity });
  return capabilitiesHeld(reader, entity);
}

/** The capabilities of `needed` the caller lacks: none when it holds GLOBAL_ROOT, which satisfies every one. */
function lacking(info: RequestInfo, needed: readonly Capability[]): Capability[] {
  return info.capabilities.includes('GLOBAL_ROOT') ? [] : needed.filter((c) => !info.capabilities.includes(c));
}

function forbidden(info: RequestInfo, subject: ProtectedSubject, needed: Capability[]): KeyholdError {
  const caller = info.caller === null ? 'this request' : `"${info.caller}"`;
  const [what, rule] =
    'entity' in subject
      ? ['holds', 'changing what an entity can do needs every capability it holds']
      : [
          'confers (itself or through the groups expanding it)',
          'changing who is in a group, what it expands or who manages it needs every capability it confers',
        ];
  return new KeyholdError('KH_ERR_FORBIDDEN', `${describe(subject)} ${what} ${needed.join(', ')}, which ${caller} does not have: ${rule}`, {
    needed,
    ...subject,
    reason: 'entity' in subject ? 'holds' : 'confers',
  });
}

/**
 * Refuses with KH_ERR_FORBIDDEN unless the caller holds every capability each subject holds or
 * confers. The caller as subject passes: it holds what it holds (an entity changing its own keys).
 * Returns whether a subject holds or confers GLOBAL_ROOT: then the change must leave a root.
 */
export async function checkProtectedSubjects(
  reader: StoreReader,
  info: RequestInfo,
  subjects: readonly ProtectedSubject[],
): Promise<boolean> {
  let touchesRoot = false;
  for (const subject of subjects) {
    const capabilities = await capabilitiesOf(reader, subject);
    touchesRoot ||= capabilities.includes('GLOBAL_ROOT');
    if ('entity' in subject && subject.entity === info.caller) continue;
    const needed = lacking(info, capabilities);
    if (needed.length > 0) throw forbidden(info, subject, needed);
  }
  return touchesRoot;
}

/** An unlocked entity holding GLOBAL_ROOT, if any: members of the groups carrying it first (usually few), then direct holders; the first found. */
export async function someUnlockedRoot(reader: StoreReader): Promise<string | undefined> {
  const unlocked = async (id: string) => (await reader.getEntity(id))?.meta.locked === false;
  for (const group of await reader.groupsWithCapability('GLOBAL_ROOT')) {
    for (const id of await resolveMembers(reader, group)) if (await unlocked(id)) return id;
  }
  for (const id of await reader.entitiesWithCapability('GLOBAL_ROOT')) if (await unlocked(id)) return id;
  return undefined;
}

/** Refuses with KH_ERR_LAST_ROOT when no unlocked entity holds GLOBAL_ROOT any more; `reader` sees the change (its transaction). */
export async function checkRootRemains(reader: StoreReader, subjects: readonly ProtectedSubject[]): Promise<void> {
  if ((await someUnlockedRoot(reader)) !== undefined) return;
  throw new KeyholdError(
    'KH_ERR_LAST_ROOT',
    `after this change to ${subjects.map(describe).join(' and ')} no unlocked entity would hold GLOBAL_ROOT, and no one could administer keyhold; give GLOBAL_ROOT to another entity (or unlock one) first`,
    { subjects: [...subjects] },
  );
}

/** The rules around one change of `subjects`: `before` it is made, and `after` every write of it (POST hooks' edits included). */
export interface ChangeGuard {
  before(reader: StoreReader): Promise<void>;
  after(reader: StoreReader): Promise<void>;
}

export function guardChange(info: RequestInfo, subjects: readonly ProtectedSubject[]): ChangeGuard {
  let touchesRoot = false;
  return {
    before: async (reader) => {
      touchesRoot = await checkProtectedSubjects(reader, info, subjects);
    },
    // Only a change to a subject that held or conferred GLOBAL_ROOT can take it from the last holder.
    after: async (reader) => {
      if (touchesRoot) await checkRootRemains(reader, subjects);
    },
  };
}

function managedByCycle(path: string[]): KeyholdError {
  return new KeyholdError(
    'KH_ERR_MANAGED_BY_CYCLE',
    `group "${path[0]}" would manage itself: ${path.join(' → ')} (each managed by the next); set managedBy to a group outside this chain, or "" for none`,
    { path },
  );
}

/** Refuses (KH_ERR_MANAGED_BY_CYCLE) a managedBy that leads back to `group`, directly or through other groups' managedBy. */
export async function checkManagedBy(reader: StoreReader, group: Group): Promise<void> {
  const path = [group.name];
  for (let manager = group.managedBy; manager !== '';) {
    if (manager === group.name) throw managedByCycle([...path, manager]);
    // A loop further up that does not pass through `group` is older data, not this change's doing.
    if (path.includes(manager)) return;
    path.push(manager);
    manager = (await reader.getGroup(manager))?.managedBy ?? '';
  }
}
