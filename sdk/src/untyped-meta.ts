// Helpers for untyped metadata: an ordered list of "key:value" strings (NetAuth's
// PatchKeyValueSlice). The server's UM operations and plugins use the same functions.

/** Splits "key:value" at the first colon; an entry without one is all key. */
export function splitEntry(entry: string): { key: string; value: string } {
  const at = entry.indexOf(':');
  return at < 0 ? { key: entry, value: '' } : { key: entry.slice(0, at), value: entry.slice(at + 1) };
}

/** The values stored under exactly `key`, in order. */
export function readUntyped(entries: readonly string[], key: string): string[] {
  return entries
    .map(splitEntry)
    .filter((e) => e.key === key)
    .map((e) => e.value);
}

/** Sets `key` to `value`: replaces the first entry with that key (dropping any later ones) or appends. */
export function upsertUntyped(entries: readonly string[], key: string, value: string): string[] {
  const entry = `${key}:${value}`;
  const out: string[] = [];
  let placed = false;
  for (const e of entries) {
    if (splitEntry(e).key !== key) out.push(e);
    else if (!placed) {
      out.push(entry);
      placed = true;
    }
  }
  if (!placed) out.push(entry);
  return out;
}

/** Removes every entry whose key is exactly `key`. */
export function clearUntypedExact(entries: readonly string[], key: string): string[] {
  return entries.filter((e) => splitEntry(e).key !== key);
}

/** Removes every entry whose key starts with `prefix` (so "fail2lock" also clears "fail2lock{ssh}"). */
export function clearUntypedFuzzy(entries: readonly string[], prefix: string): string[] {
  return entries.filter((e) => !splitEntry(e).key.startsWith(prefix));
}
