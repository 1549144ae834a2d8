// Group expansions resolved. A group's members are its direct members plus the members of every
// group it INCLUDEs, minus the members of every group it EXCLUDEs (an exclusion also removes
// direct members). Expansions form a graph without cycles (checked on every write); each walk
// here still carries its path, so a cycle that got into the data anyway is reported, not looped on.
import { CAPABILITIES, type Capability, type Entity, type Group } from 'keyhold-plugin-sdk';
import { KeyholdError } from '../errors.js';
import type { StoreReader } from '../store/store.js';

function cycleError(path: readonly string[]): KeyholdError {
  return new KeyholdError('KH_ERR_EXPANSION_CYCLE', `groups would expand themselves: ${path.join(' → ')}`, { path: [...path] });
}

/** Groups read once per resolution. */
class GroupGraph {
  private readonly groups = new Map<string, Group>();

  constructor(private readonly reader: StoreReader) {}

  async get(name: string): Promise<Group> {
    let group = this.groups.get(name);
    if (!group) {
      group = await this.reader.getGroup(name);
      if (!group) throw new KeyholdError('KH_ERR_GROUP_NOT_FOUND', `no group "${name}"`);
      this.groups.set(name, group);
    }
    return group;
  }
}

/**
 * Evaluates `valueOf(group)` bottom-up over the expansion graph, each group once: `combine` gets
 * the group and the values of its INCLUDE and EXCLUDE targets.
 */
function expansionFold<T>(
  graph: GroupGraph,
  combine: (group: Group, included: T[], excluded: T[]) => Promise<T> | T,
): (name: string) => Promise<T> {
  const done = new Map<string, T>();
  const visit = async (name: string, path: string[]): Promise<T> => {
    if (path.includes(name)) throw cycleError([...path, name]);
    if (done.has(name)) return done.get(name) as T;
    const group = await graph.get(name);
    const included: T[] = [];
    const excluded: T[] = [];
    for (const e of group.expansions) (e.mode === 'INCLUDE' ? included : excluded).push(await visit(e.group, [...path, name]));
    const value = await combine(group, included, excluded);
    done.set(name, value);
    return value;
  };
  return (name) => visit(name, []);
}

/** Entity ids of `group`'s members with expansions resolved, sorted. */
export async function resolveMembers(reader: StoreReader, group: string): Promise<string[]> {
  const members = expansionFold<Set<string>>(new GroupGraph(reader), async (g, included, excluded) => {
    const set = new Set(await reader.directMembers(g.name));
    for (const ids of included) for (const id of ids) set.add(id);
    for (const ids of excluded) for (const id of ids) set.delete(id);
    return set;
  });
  return [...(await members(group))].sort();
}

/**
 * Every group an entity whose direct groups are `direct` is in, expansions resolved, sorted by name.
 * Only groups reachable upwards from a direct group through INCLUDE expansions can qualify; each
 * is then decided by the same rule as resolveMembers, without listing anyone else's membership.
 */
export async function resolveGroupsOf(reader: StoreReader, direct: readonly string[]): Promise<Group[]> {
  const graph = new GroupGraph(reader);
  const directSet = new Set(direct);
  const isMember = expansionFold<boolean>(
    graph,
    (g, included, excluded) => (directSet.has(g.name) || included.includes(true)) && !excluded.includes(true),
  );
  const candidates = new Set(direct);
  // Breadth-first upwards; every name is queued once, so this ends after at most every group.
  for (const name of candidates) {
    for (const parent of await reader.groupsExpanding(name)) {
      if (!candidates.has(parent) && (await graph.get(parent)).expansions.some((e) => e.group === name && e.mode === 'INCLUDE'))
        candidates.add(parent);
    }
  }
  const groups: Group[] = [];
  for (const name of [...candidates].sort()) if (await isMember(name)) groups.push(await graph.get(name));
  return groups;
}

/** `entity`'s own capabilities plus those of `groups` (every group it is in), in catalog order. */
export function capabilitiesThrough(entity: Entity, groups: readonly Group[]): Capability[] {
  const held = new Set(entity.meta.capabilities);
  for (const group of groups) group.capabilities.forEach((c) => held.add(c));
  return CAPABILITIES.filter((c) => held.has(c));
}

/** What `entity` may do: its own capabilities plus those of every group it is in, expansions resolved, in catalog order. */
export async function capabilitiesHeld(reader: StoreReader, entity: Entity): Promise<Capability[]> {
  return capabilitiesThrough(entity, await resolveGroupsOf(reader, entity.meta.groups));
}

/**
 * Refuses expansions of `group` that name itself, name a target twice, name a group that does
 * not exist, or would close a cycle (a target that already reaches `group` through expansions).
 */
export async function checkExpansions(reader: StoreReader, group: Group): Promise<void> {
  const seen = new Set<string>();
  for (const e of group.expansions) {
    if (e.group === group.name) throw cycleError([group.name, group.name]);
    if (seen.has(e.group)) throw new KeyholdError('KH_ERR_EXPANSION_EXISTS', `group "${group.name}" already expands "${e.group}"`);
    seen.add(e.group);
  }
  const graph = new GroupGraph(reader);
  for (const e of group.expansions) await graph.get(e.group);
  // Walks down from each target over the stored graph; meeting `group` closes a cycle.
  const reaches = expansionFold<string[] | undefined>(graph, (g, included, excluded) => {
    if (g.name === group.name) return [g.name];
    const below = [...included, ...excluded].find((p) => p !== undefined);
    return below && [g.name, ...below];
  });
  for (const e of group.expansions) {
    const path = await reaches(e.group);
    if (path) throw cycleError([group.name, ...path]);
  }
}
