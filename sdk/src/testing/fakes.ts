// Fake entities and groups for tests: give the fields that matter, the schema fills the rest.
import { parseEntity, parseGroup, type Entity, type EntityMeta, type Group } from '../index.js';

export type EntityInit = Partial<Omit<Entity, 'meta'>> & { meta?: Partial<EntityMeta> };

/** An entity as a hook receives it: every field present, `secret` empty, id "alice" unless given. */
export function fakeEntity(init: EntityInit = {}): Entity {
  return parseEntity({ id: 'alice', ...init });
}

/** A group as a hook receives it, name "staff" unless given. */
export function fakeGroup(init: Partial<Group> = {}): Group {
  return parseGroup({ name: 'staff', ...init });
}
