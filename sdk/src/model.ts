// The Entity/Group schema at run time: the .proto reflected by protobufjs, used to check and
// normalise every object that crosses a trust boundary (API input, plugin output).
import type * as Protobuf from 'protobufjs';
import { requireDependency } from './dependency.js';
import type { Entity, Group } from './generated/model.js';
import { KEYHOLD_PROTO } from './generated/proto-source.js';

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
    const protobuf = requireDependency('protobufjs') as typeof Protobuf;
    const { root } = protobuf.parse(KEYHOLD_PROTO);
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
  // String.prototype.isWellFormed (Node 20): ES2024, not yet in the TypeScript lib this package builds with.
  return (text as unknown as { isWellFormed(): boolean }).isWellFormed();
}

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** Where a value is: in `parent`, its field `name`, and the index or map key of an item in that. Built only for an error message. */
function at(parent: string, name: string, item?: number | string): string {
  const path = join(parent, name);
  return item === undefined ? path : typeof item === 'number' ? `${path}[${item}]` : `${path}[${JSON.stringify(item)}]`;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}

/**
 * A field as the checks need it, worked out once per field from the reflected schema: every
 * object a plugin changes is checked on the host, so the checks are on the hook path.
 */
interface FieldPlan {
  name: string;
  kind: 'string' | 'bool' | 'int32' | 'enum' | 'message' | 'other';
  /** The schema's type name: the enum's or the message's, else the scalar type. */
  typeName: string;
  repeated: boolean;
  map: boolean;
  /** An enum's names a value may take (all but the _UNSPECIFIED one). */
  names: readonly string[];
  message: Protobuf.Type | undefined;
}

const plans = new WeakMap<Protobuf.Type, readonly FieldPlan[]>();

function planOf(type: Protobuf.Type): readonly FieldPlan[] {
  let plan = plans.get(type);
  if (!plan) {
    const { protobuf } = loadSchemas();
    plan = type.fieldsArray.map((field): FieldPlan => {
      field.resolve();
      const resolved = field.resolvedType;
      const base = { name: field.name, repeated: field.repeated, map: field.map, names: [] as string[], message: undefined };
      if (resolved instanceof protobuf.Enum)
        return {
          ...base,
          kind: 'enum',
          typeName: resolved.name,
          names: Object.keys(resolved.values).filter((n) => !n.endsWith('_UNSPECIFIED')),
        };
      if (resolved instanceof protobuf.Type) return { ...base, kind: 'message', typeName: resolved.name, message: resolved };
      const kind = field.type === 'string' || field.type === 'bool' || field.type === 'int32' ? field.type : 'other';
      return { ...base, kind, typeName: field.type };
    });
    plans.set(type, plan);
  }
  return plan;
}

/** Checks one value of `field` in the object at `parent`: the field's value, or its item `item`. */
function checkScalar(field: FieldPlan, value: unknown, parent: string, item?: number | string): unknown {
  switch (field.kind) {
    case 'string':
      if (typeof value !== 'string') throw new SchemaError(at(parent, field.name, item), `expected a string, got ${describe(value)}`);
      if (!isWellFormedText(value)) throw new SchemaError(at(parent, field.name, item), 'not valid Unicode text (it has a lone surrogate)');
      return value;
    case 'enum':
      if (typeof value !== 'string' || !field.names.includes(value)) {
        throw new SchemaError(
          at(parent, field.name, item),
          `${describe(value)} is not a ${field.typeName}; expected one of ${field.names.join(', ')}`,
        );
      }
      return value;
    case 'message':
      return checkMessage(field.message!, value, at(parent, field.name, item));
    case 'bool':
      if (typeof value !== 'boolean') throw new SchemaError(at(parent, field.name, item), `expected true or false, got ${describe(value)}`);
      return value;
    case 'int32':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < INT32_MIN || value > INT32_MAX) {
        throw new SchemaError(at(parent, field.name, item), `expected a 32-bit integer, got ${describe(value)}`);
      }
      return value;
    default:
      throw new SchemaError(at(parent, field.name, item), `unsupported schema type ${field.typeName}`);
  }
}

function defaultFor(field: FieldPlan): unknown {
  if (field.map) return {};
  if (field.repeated) return [];
  if (field.kind === 'message') return checkMessage(field.message!, {}, '');
  return field.kind === 'string' ? '' : field.kind === 'bool' ? false : 0;
}

function checkMessage(type: Protobuf.Type, value: unknown, path: string): Record<string, unknown> {
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
  for (const field of planOf(type)) {
    const v = input[field.name];
    if (v === undefined) {
      if (field.kind === 'enum' && !field.repeated) throw new SchemaError(join(path, field.name), 'is required');
      out[field.name] = defaultFor(field);
    } else if (field.map) {
      if (v === null || typeof v !== 'object' || Array.isArray(v))
        throw new SchemaError(join(path, field.name), `expected an object map, got ${describe(v)}`);
      const m: Record<string, unknown> = {};
      for (const [k, item] of Object.entries(v)) {
        if (!isWellFormedText(k))
          throw new SchemaError(join(path, field.name), 'a key is not valid Unicode text (it has a lone surrogate)');
        // Assigning it would replace the map's prototype and lose the entry: never a key.
        if (k === '__proto__') throw new SchemaError(join(path, field.name), 'the key "__proto__" is reserved');
        m[k] = checkScalar(field, item, path, k);
      }
      out[field.name] = m;
    } else if (field.repeated) {
      if (!Array.isArray(v)) throw new SchemaError(join(path, field.name), `expected an array, got ${describe(v)}`);
      const items: unknown[] = new Array(v.length);
      for (let i = 0; i < v.length; i++) items[i] = checkScalar(field, v[i], path, i);
      out[field.name] = items;
    } else {
      out[field.name] = checkScalar(field, v, path);
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
