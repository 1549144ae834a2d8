// How untyped metadata, kv and set-like lists change: shared by entities and groups, applied in
// memory to the object a request's PRE hooks returned. Their input is checked here too.
import { clearUntypedExact, clearUntypedFuzzy, upsertUntyped, type KVValues } from 'keyhold-plugin-sdk';
import { KeyholdError } from '../errors.js';
import { checkKey, invalidInput } from './input-checks.js';
import type { KvChange, SetChange, UntypedMetaChange } from './operations.js';

export function applyUntyped(entries: string[], change: UntypedMetaChange): string[] {
  switch (change.action) {
    case 'upsert':
      return upsertUntyped(entries, change.key, change.value);
    case 'clear-fuzzy':
      return clearUntypedFuzzy(entries, change.key);
    case 'clear-exact':
      return clearUntypedExact(entries, change.key);
  }
}

export function applyKv(kv: Record<string, KVValues>, change: KvChange): Record<string, KVValues> {
  const exists = Object.hasOwn(kv, change.key);
  if (change.action === 'add' && exists)
    throw new KeyholdError('KH_ERR_KV_KEY_EXISTS', `kv key "${change.key}" already exists; replace it instead`);
  if (change.action !== 'add' && !exists) throw new KeyholdError('KH_ERR_KV_KEY_NOT_FOUND', `no kv key "${change.key}"`);
  const next = { ...kv };
  if (change.action === 'delete') delete next[change.key];
  else next[change.key] = { values: [...change.values] };
  return next;
}

/** Adding a present value or removing an absent one changes nothing (both are idempotent). */
export function applySet<T>(list: readonly T[], change: SetChange<T>): T[] {
  if (change.action === 'add') return list.includes(change.value) ? [...list] : [...list, change.value];
  return list.filter((v) => v !== change.value);
}

export function checkUntypedChange(change: UntypedMetaChange): void {
  checkKey('untyped metadata key', change.key);
}

export function checkKvChange(change: KvChange): void {
  checkKey('kv key', change.key);
  if (change.action !== 'delete' && !(Array.isArray(change.values) && change.values.every((v) => typeof v === 'string')))
    throw invalidInput('kv values must be a list of strings');
}

export function kvValue(kv: Record<string, KVValues>, key: string): KVValues {
  const values = Object.hasOwn(kv, key) ? kv[key] : undefined;
  if (!values) throw new KeyholdError('KH_ERR_KV_KEY_NOT_FOUND', `no kv key "${key}"`);
  return values;
}
