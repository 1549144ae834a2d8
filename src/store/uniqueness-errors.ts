// What a uniqueness violation means to a client, the same for both stores: each store tells which
// unique key its database refused (SQLite by the message's column, PostgreSQL by the constraint's
// name) and this gives the catalog error, so the two stores cannot drift apart in what they say.
import { KeyholdError } from '../errors.js';

/** The unique keys of the data model. */
export type UniqueKey = 'entity id' | 'group name' | 'number' | 'membership' | 'expansion';

/** The object an insert was about, for the messages of uniqueness errors. */
export interface Inserted {
  kind: 'entity' | 'group';
  key: string;
  number: number;
}

/** The catalog error for a refused `key`, naming the inserted object when known. */
export function uniquenessError(key: UniqueKey, inserted?: Inserted): KeyholdError {
  const name = inserted ? ` "${inserted.key}"` : '';
  switch (key) {
    case 'entity id':
      return new KeyholdError('KH_ERR_ENTITY_EXISTS', `an entity${name} already exists`);
    case 'group name':
      return new KeyholdError('KH_ERR_GROUP_EXISTS', `a group${name} already exists`);
    case 'number':
      return new KeyholdError(
        'KH_ERR_NUMBER_TAKEN',
        inserted ? `${inserted.kind} number ${inserted.number} is already in use` : 'that number is already in use',
      );
    case 'membership':
      return new KeyholdError('KH_ERR_ALREADY_MEMBER', 'the entity is already a direct member of the group');
    case 'expansion':
      return new KeyholdError('KH_ERR_EXPANSION_EXISTS', 'the group already has an expansion of that target');
  }
}
