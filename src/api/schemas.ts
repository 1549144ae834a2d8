// JSON schemas for every route's input and output, built from the SDK's constants (capabilities,
// expansion modes) and the operations' field lists, so a new capability or metadata field
// reaches validation and the OpenAPI document without being written twice.
// Inputs refuse unknown fields; types are never coerced (a number is not a string).
import { CAPABILITIES, EXPANSION_MODES } from 'keyhold-plugin-sdk';
import { KeyholdError } from '../errors.js';
import { MAX_NAME_LENGTH } from '../identity/identity.js';
import { ENTITY_META_FIELDS } from '../identity/operations.js';

export const MAX_TEXT_LENGTH = 4096;

const name = { type: 'string', minLength: 1, maxLength: MAX_NAME_LENGTH } as const;
const text = { type: 'string', maxLength: MAX_TEXT_LENGTH } as const;
const secret = { type: 'string', minLength: 1, maxLength: 1024 } as const;
const number = { type: 'integer', minimum: 0, maximum: 2147483647 } as const;
const capability = { type: 'string', enum: [...CAPABILITIES] } as const;
const expansionMode = { type: 'string', enum: [...EXPANSION_MODES] } as const;
const stringList = { type: 'array', items: { type: 'string' } } as const;
const kvMap = { type: 'object', additionalProperties: { type: 'object', properties: { values: stringList } } } as const;

function object(properties: Record<string, unknown>, required: string[] = []) {
  return { type: 'object', properties, required, additionalProperties: false } as const;
}

// Inputs

export const entityMetaPatch = object(Object.fromEntries(ENTITY_META_FIELDS.map((f) => [f, text])));
/** An update must change something. */
export const entityMetaUpdate = { ...entityMetaPatch, minProperties: 1 } as const;

export const params = {
  entity: object({ id: name }, ['id']),
  group: object({ name }, ['name']),
  entityKey: object({ id: name, key: name }, ['id', 'key']),
  groupKey: object({ name, key: name }, ['name', 'key']),
  membership: object({ name, entityId: name }, ['name', 'entityId']),
};

export const searchQuery = object({
  text: { type: 'string', maxLength: MAX_NAME_LENGTH },
  limit: { type: 'string', pattern: '^[0-9]{1,4}$', description: 'at most this many results (1 to 1000, default 100)' },
  after: { type: 'string', maxLength: MAX_NAME_LENGTH, description: 'results after this id/name, for paging' },
});

export const groupsQuery = object({
  indirect: { type: 'string', enum: ['true', 'false'], description: 'also the groups reached through expansions' },
});

export const createEntityBody = object({ id: name, number, secret, meta: entityMetaPatch }, ['id']);

export const untypedMetaChange = {
  ...object({ action: { type: 'string', enum: ['upsert', 'clear-fuzzy', 'clear-exact'] }, key: name, value: text }, ['action', 'key']),
  if: { properties: { action: { const: 'upsert' } } },
  then: { required: ['value'] },
  else: { not: { required: ['value'] } },
} as const;

export const kvChange = {
  ...object(
    {
      action: { type: 'string', enum: ['add', 'replace', 'delete'] },
      key: name,
      values: { type: 'array', items: text, minItems: 1, maxItems: 256 },
    },
    ['action', 'key'],
  ),
  if: { properties: { action: { const: 'delete' } } },
  then: { not: { required: ['values'] } },
  else: { required: ['values'] },
} as const;

const setAction = { type: 'string', enum: ['add', 'remove'] } as const;
export const keyChange = object({ action: setAction, value: { type: 'string', minLength: 1, maxLength: 16384 } }, ['action', 'value']);
export const capabilityChange = object({ action: setAction, value: capability }, ['action', 'value']);
export const expansionChange = object({ action: setAction, mode: expansionMode, group: name }, ['action', 'mode', 'group']);
export const secretBody = object({ secret }, ['secret']);

export const createGroupBody = object(
  {
    name,
    number,
    displayName: text,
    managedBy: name,
    capabilities: { type: 'array', items: capability, uniqueItems: true },
    expansions: { type: 'array', items: object({ mode: expansionMode, group: name }, ['mode', 'group']), maxItems: 256 },
  },
  ['name'],
);

export const groupPatch = {
  ...object({ displayName: text, managedBy: { type: 'string', maxLength: MAX_NAME_LENGTH, description: 'empty: managed by nobody' } }),
  minProperties: 1,
} as const;

export const credentials = object({ id: name, secret }, ['id', 'secret']);
export const changeSecretBody = object({ id: name, oldSecret: secret, newSecret: secret }, ['id', 'oldSecret', 'newSecret']);
export const validateTokenBody = object({ token: { type: 'string', minLength: 1, maxLength: 8192 } }, ['token']);

// Outputs (fields not listed here are never sent, so the secret hash cannot leak)

export const entity = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    number: { type: 'integer' },
    meta: {
      type: 'object',
      properties: {
        ...Object.fromEntries(ENTITY_META_FIELDS.map((f) => [f, { type: 'string' }])),
        locked: { type: 'boolean' },
        groups: stringList,
        capabilities: stringList,
        keys: stringList,
        untypedMeta: stringList,
        kv: kvMap,
      },
    },
  },
} as const;

export const group = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    number: { type: 'integer' },
    displayName: { type: 'string' },
    managedBy: { type: 'string' },
    capabilities: stringList,
    expansions: { type: 'array', items: { type: 'object', properties: { mode: { type: 'string' }, group: { type: 'string' } } } },
    untypedMeta: stringList,
    kv: kvMap,
  },
} as const;

export const errorBody = {
  type: 'object',
  properties: { code: { type: 'string' }, message: { type: 'string' }, details: { type: 'object', additionalProperties: true } },
  required: ['code', 'message'],
} as const;

export const list = (key: string, items: unknown) => ({ type: 'object', properties: { [key]: { type: 'array', items } } }) as const;
export const kvValues = { type: 'object', properties: { key: { type: 'string' }, values: stringList } } as const;
export const claims = {
  type: 'object',
  properties: { sub: { type: 'string' }, capabilities: stringList, expiresAt: { type: 'string' }, issuedAt: { type: 'string' } },
} as const;

/** A route's responses: its success shapes plus the error body for every failure status. */
export function responses(success: Record<number, unknown>) {
  return { ...success, '4xx': errorBody, '5xx': errorBody };
}

export interface SearchParams {
  text?: string;
  limit?: string;
  after?: string;
}

/** The search query string as the store wants it (the schema has already checked its shape). */
export function toSearchQuery(query: SearchParams): { text?: string; limit?: number; after?: string } {
  const limit = query.limit === undefined ? undefined : Number(query.limit);
  if (limit !== undefined && (limit < 1 || limit > 1000)) {
    throw new KeyholdError('KH_ERR_INVALID_INPUT', 'querystring limit: must be from 1 to 1000', {
      in: 'querystring',
      problems: [{ path: 'limit', problem: 'must be from 1 to 1000' }],
    });
  }
  return {
    ...(query.text !== undefined && { text: query.text }),
    ...(limit !== undefined && { limit }),
    ...(query.after !== undefined && { after: query.after }),
  };
}
