// The plugins' state part of the store (docs/plugin-guide.md, "State"): each plugin's keys in a
// namespace of its own, named by the host after the plugin (never by the plugin). Each change is
// one short write transaction of its own, committed before it resolves and never part of a
// request's transaction: a count a preAuthCheck hook made stays even when the login then fails.
// The rules (limits, TTL, CAS) are the SDK's StateService; a store only keeps entries.
import type { Decision, StateBackend, StateEntry } from 'keyhold-plugin-sdk';

export interface PluginStateStore {
  /** The live (unexpired at `now`) entry of `key` in `plugin`'s namespace. */
  get(plugin: string, key: string, now: number): Promise<StateEntry | undefined>;
  /** Live entries whose key starts with `prefix` and sorts after `after` (byte order), in key order, at most `limit`. */
  list(plugin: string, prefix: string, after: string, limit: number, now: number): Promise<StateEntry[]>;
  /**
   * In one write transaction of its own: reads the live entry of `key`, writes what `decide`
   * returns (an entry, null to delete, undefined for nothing) and commits before resolving.
   * `liveKeys` counts the namespace's live keys. A rejection of `decide` writes nothing.
   */
  change<T>(
    plugin: string,
    key: string,
    now: number,
    decide: (current: StateEntry | undefined, liveKeys: () => Promise<number>) => Promise<Decision<T>>,
  ): Promise<T>;
  /** Deletes the entries expired at `now`; returns how many. */
  prune(now: number): Promise<number>;
}

/** `plugin`'s namespace of `store`, as the SDK's StateService serves it. */
export function pluginNamespace(store: PluginStateStore, plugin: string): StateBackend {
  return {
    get: (key, now) => store.get(plugin, key, now),
    list: (prefix, after, limit, now) => store.list(plugin, prefix, after, limit, now),
    change: (key, now, decide) => store.change(plugin, key, now, decide),
  };
}
