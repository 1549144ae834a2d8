// An entity as forward authentication describes it to an upstream, and what a cached verification
// of its credentials must still match: its groups (expansions resolved), its effective
// capabilities, whether it is locked, and its token generation (replaced on a secret change, a
// lock and a logout, so a changed generation means "verify again"). Read from the store, each
// group once.
import type { Capability } from 'keyhold-plugin-sdk';
import { isKeyholdError } from '../errors.js';
import type { StoreReader } from '../store/store.js';
import { capabilitiesThrough, resolveGroupsOf } from './expansions.js';

export interface AccessProfile {
  id: string;
  generation: string;
  locked: boolean;
  /** Every group the entity is in, directly or through expansions, sorted. */
  groups: string[];
  /** Its own and its groups' capabilities, in catalog order. */
  capabilities: Capability[];
}

/** The entity's profile now; null when there is no such entity. */
export async function loadAccessProfile(reader: StoreReader, id: string): Promise<AccessProfile | null> {
  // Reads outside a transaction: a group destroyed between them is read again once, as it is then.
  for (let attempt = 1; ; attempt++) {
    const entity = await reader.getEntity(id);
    const generation = await reader.tokenGeneration(id);
    if (!entity || generation === undefined) return null;
    try {
      const groups = await resolveGroupsOf(reader, entity.meta.groups);
      return {
        id,
        generation,
        locked: entity.meta.locked,
        groups: groups.map((g) => g.name),
        capabilities: capabilitiesThrough(entity, groups),
      };
    } catch (err) {
      if (attempt > 1 || !isKeyholdError(err) || err.code !== 'KH_ERR_GROUP_NOT_FOUND') throw err;
    }
  }
}

/** Whether two profiles of one entity tell the same: a cached verification stands only while nothing of it changed. */
export function sameProfile(a: AccessProfile, b: AccessProfile): boolean {
  return (
    a.id === b.id &&
    a.generation === b.generation &&
    a.locked === b.locked &&
    a.groups.join('\n') === b.groups.join('\n') &&
    a.capabilities.join(' ') === b.capabilities.join(' ')
  );
}
