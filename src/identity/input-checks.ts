// Checks of request input that need no data: names, keys, numbers, capabilities, secrets,
// patches. They run before a request takes any lock or calls any hook, so bad input costs
// nothing and is always refused with KH_ERR_INVALID_NAME / KH_ERR_INVALID_INPUT saying what to do.
import { CAPABILITIES, EXPANSION_MODES, SchemaError, type Capability, type Expansion, type JsonObject } from 'keyhold-plugin-sdk';
import { KeyholdError } from '../errors.js';
import { CODE_POINT_RULE, codePointProblem, RESERVED_KEYS, reservedKeyProblem } from './name-rules.js';

/** Longest entity id or group name, in characters: room for e.g. e-mail-like ids, short enough for paths and logs. */
export const MAX_NAME_LENGTH = 128;
/** Longest secret, in characters: far above any passphrase, low enough that hashing it is no denial of service. */
export const MAX_SECRET_LENGTH = 1024;

const NAME_RULE = `1 to ${MAX_NAME_LENGTH} characters, ${CODE_POINT_RULE}, not starting with '-', not ${RESERVED_KEYS.join(', ')}`;

/** What is wrong with `value` as a name, or undefined when it is fine. */
function nameProblem(value: string): string | undefined {
  if (value.length === 0) return 'it is empty';
  if ([...value].length > MAX_NAME_LENGTH) return `it is ${[...value].length} characters long`;
  const codePoint = codePointProblem(value);
  if (codePoint) return codePoint;
  if (value.startsWith('-')) return "it starts with '-'";
  // Ids and names end up as keys of JavaScript objects (settings, rule tables, JSON maps) too.
  return reservedKeyProblem(value);
}

/** Entity ids and group names: KH_ERR_INVALID_NAME saying what is wrong and what is allowed. */
export function checkName(kind: 'entity id' | 'group name', value: string): void {
  const problem = nameProblem(value);
  if (problem)
    throw new KeyholdError('KH_ERR_INVALID_NAME', `invalid ${kind} ${JSON.stringify(value)}: ${problem}; ${kind}s are ${NAME_RULE}`, {
      [kind === 'entity id' ? 'id' : 'name']: value,
    });
}

export function invalidInput(message: string): KeyholdError {
  return new KeyholdError('KH_ERR_INVALID_INPUT', message);
}

/** kv and untyped-metadata keys follow the name rule and are never reserved; untyped keys also may not hold the ':' that ends them. */
export function checkKey(kind: 'kv key' | 'untyped metadata key', key: string): void {
  const problem = nameProblem(key) ?? (kind === 'untyped metadata key' && key.includes(':') ? "it contains ':'" : undefined);
  if (problem)
    throw invalidInput(
      `invalid ${kind} ${JSON.stringify(key)}: ${problem}; keys are ${NAME_RULE}${kind === 'untyped metadata key' ? ", without ':'" : ''}`,
    );
}

export function checkNumber(number: number | undefined): void {
  if (number !== undefined && !(Number.isInteger(number) && number >= 0 && number <= 2147483647)) {
    throw invalidInput(`invalid number ${number}: give a whole number from 1 to 2147483647, or 0 for the next free one`);
  }
}

export function checkCapability(value: string): asserts value is Capability {
  if (!(CAPABILITIES as readonly string[]).includes(value))
    throw invalidInput(`unknown capability ${JSON.stringify(value)}; capabilities are ${CAPABILITIES.join(', ')}`);
}

export function checkExpansionShape(e: Expansion): void {
  if (!(EXPANSION_MODES as readonly string[]).includes(e.mode))
    throw invalidInput(`unknown expansion mode ${JSON.stringify(e.mode)}; modes are ${EXPANSION_MODES.join(', ')}`);
  checkName('group name', e.group);
}

export function checkSecret(secret: string): void {
  const length = [...secret].length;
  if (length === 0 || length > MAX_SECRET_LENGTH)
    throw invalidInput(`a secret must be 1 to ${MAX_SECRET_LENGTH} characters, not ${length}`);
}

/** Only the given fields of `patch`, each a string. */
export function checkPatch(patch: object, fields: readonly string[]): void {
  for (const [field, value] of Object.entries(patch)) {
    if (!fields.includes(field)) throw invalidInput(`cannot set ${JSON.stringify(field)} here; the fields are ${fields.join(', ')}`);
    if (typeof value !== 'string') throw invalidInput(`${field} must be a string`);
  }
}

/** A schema check of request input; its SchemaError becomes KH_ERR_INVALID_INPUT with the path. */
export function parsed<T>(parse: (value: unknown) => T, value: unknown): T {
  try {
    return parse(value);
  } catch (err) {
    if (err instanceof SchemaError) throw invalidInput(err.message);
    throw err;
  }
}

/** Request data for hooks: a JSON copy, so no hook can reach into the caller's objects. */
export function json(value: object): JsonObject {
  return JSON.parse(JSON.stringify(value)) as JsonObject;
}
