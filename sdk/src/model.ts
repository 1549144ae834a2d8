// The Entity/Group schema at run time: the .proto reflected by protobufjs, used to check and
// normalise every object that crosses a trust boundary (API input, plugin output).
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type * as Protobuf from 'protobufjs';
import type { Entity, Group } from './generated/model.js';

export * from './generated/model.js';

interface Schemas {
  protobuf: typeof Protobuf;
  entity: Protobuf.Type;
  group: Protobuf.Type;
}

let schemas: Schemas | undefined;

/**
 * The reflected .proto, loaded on first use: a plugin that never checks or encodes an object (the
 * host checks its results) starts without paying for protobufjs and the schema parse (~50 ms).
 */
function loadSchemas(): Schemas {
  if (!schemas) {
    const protobuf = createRequire(import.meta.url)('protobufjs') as typeof Protobuf;
    const root = protobuf.loadSync(fileURLToPath(new URL('../proto/keyhold.proto', import.meta.url)));
    schemas = { protobuf, entity: root.lookupType('keyhold.v1.Entity'), group: root.lookupType('keyhold.v1.Group') };
  }
  return schemas;
}

/** Thrown when a value does not fit the schema; `path` says where (e.g. `meta.capabilities[2]`). */
export class SchemaError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path || 'value'}: ${problem}`);
    this.name = 'SchemaError';
  }
}

/** Text with a lone UTF-16 surrogate survives JSON.parse but cannot be stored as UTF-8. */
export function isWellFormedText(text: string): boolean {
  return !/\p{Cs}/u.test(text);
}

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}

function checkScalar(field: Protobuf.Field, value: unknown, path: string): unknown {
  const { protobuf } = loadSchemas();
  const type = field.resolvedType;
  if (type instanceof protobuf.Enum) {
    const names = Object.keys(type.values).filter((n) => !n.endsWith('_UNSPECIFIED'));
    if (typeof value !== 'string' || !names.includes(value)) {
      throw new SchemaError(path, `${describe(value)} is not a ${type.name}; expected one of ${names.join(', ')}`);
    }
    return value;
  }
  if (type instanceof protobuf.Type) return checkMessage(type, value, path);
  switch (field.type) {
    case 'string':
      if (typeof value !== 'string') throw new SchemaError(path, `expected a string, got ${describe(value)}`);
      if (!isWellFormedText(value)) throw new SchemaError(path, 'not valid Unicode text (it has a lone surrogate)');
      return value;
    case 'bool':
      if (typeof value !== 'boolean') throw new SchemaError(path, `expected true or false, got ${describe(value)}`);
      return value;
    case 'int32':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < INT32_MIN || value > INT32_MAX) {
        throw new SchemaError(path, `expected a 32-bit integer, got ${describe(value)}`);
      }
      return value;
    default:
      throw new SchemaError(path, `unsupported schema type ${field.type}`);
  }
}

function defaultFor(field: Protobuf.Field): unknown {
  const { protobuf } = loadSchemas();
  if (field.map) return {};
  if (field.repeated) return [];
  const type = field.resolvedType;
  if (type instanceof protobuf.Type) return checkMessage(type, {}, '');
  return field.type === 'string' ? '' : field.type === 'bool' ? false : 0;
}

function checkMessage(type: Protobuf.Type, value: unknown, path: string): Record<string, unknown> {
  const { protobuf } = loadSchemas();
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SchemaError(path, `expected a ${type.name} object, got ${describe(value)}`);
  }
  const input = value as Record<string, unknown>;
  for (const key of Object.keys(input)) {
    if (!type.fields[key]) {
      throw new SchemaError(join(path, key), `unknown field; a ${type.name} has ${Object.keys(type.fields).join(', ')}`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    field.resolve();
    const here = join(path, field.name);
    const v = input[field.name];
    if (v === undefined) {
      if (field.resolvedType instanceof protobuf.Enum && !field.repeated) throw new SchemaError(here, 'is required');
      out[field.name] = defaultFor(field);
    } else if (field.map) {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new SchemaError(here, `expected an object map, got ${describe(v)}`);
      const m: Record<string, unknown> = {};
      for (const [k, item] of Object.entries(v)) {
        if (!isWellFormedText(k)) throw new SchemaError(here, 'a key is not valid Unicode text (it has a lone surrogate)');
        // Assigning it would replace the map's prototype and lose the entry: never a key.
        if (k === '__proto__') throw new SchemaError(here, 'the key "__proto__" is reserved');
        m[k] = checkScalar(field, item, `${here}[${JSON.stringify(k)}]`);
      }
      out[field.name] = m;
    } else if (field.repeated) {
      if (!Array.isArray(v)) throw new SchemaError(here, `expected an array, got ${describe(v)}`);
      out[field.name] = v.map((item, i) => checkScalar(field, item, `${here}[${i}]`));
    } else {
      out[field.name] = checkScalar(field, v, here);
    }
  }
  return out;
}

/** Checks `value` against the Entity schema: unknown fields and wrong types are refused, absent fields get their defaults. */
export function parseEntity(value: unknown, path = ''): Entity {
  return checkMessage(loadSchemas().entity, value, path) as unknown as Entity;
}

/** Checks `value` against the Group schema, as parseEntity does for entities. */
export function parseGroup(value: unknown, path = ''): Group {
  return checkMessage(loadSchemas().group, value, path) as unknown as Group;
}

/** Protobuf binary encoding of an entity (used by the store and for size limits). */
export function encodeEntity(entity: Entity): Uint8Array {
  const { entity: schema } = loadSchemas();
  return schema.encode(schema.fromObject(entity)).finish();
}

/** Protobuf binary encoding of a group. */
export function encodeGroup(group: Group): Uint8Array {
  const { group: schema } = loadSchemas();
  return schema.encode(schema.fromObject(group)).finish();
}

const toObjectOptions: Protobuf.IConversionOptions = { enums: String, longs: Number, defaults: true, arrays: true, objects: true };

export function decodeEntity(bytes: Uint8Array): Entity {
  const { entity: schema } = loadSchemas();
  return schema.toObject(schema.decode(bytes), toObjectOptions) as unknown as Entity;
}

export function decodeGroup(bytes: Uint8Array): Group {
  const { group: schema } = loadSchemas();
  return schema.toObject(schema.decode(bytes), toObjectOptions) as unknown as Group;
}
