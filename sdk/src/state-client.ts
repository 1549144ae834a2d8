// `this.state` of a plugin: typed helpers over the `state/…` requests (docs/protocol.md, "State").
// serve() connects it to the host over the wire, the test harness to a namespace in memory; both
// answer through the same StateService rules (plugin-state.ts). Without either, every call says why.
import { StateError } from './plugin-state.js';
import { StateErrorCodes, type StateEntry, type StateMethod, type StateRequests } from './protocol.js';

/** Sends one state request and resolves with its result, or rejects with a StateError. */
export type StateTransport = <M extends StateMethod>(method: M, params: StateRequests[M]['params']) => Promise<StateRequests[M]['result']>;

export interface TtlOption {
  /** The entry expires this long after the write (ms); without it, never. */
  ttlMs?: number;
}

const NOT_CONNECTED: StateTransport = (method) =>
  Promise.reject(
    new StateError(
      StateErrorCodes.Unavailable,
      `${method}: no plugin state here: the host did not offer it at initialize (a keyhold older than plugin state, or \`plugin verify\`), or the plugin is not served`,
    ),
  );

function ttl(options: TtlOption): { ttlMs?: number } {
  return options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs };
}

/** The plugin's own namespace of keys in the host's store: kept over restarts, shared by every server on the database. */
export class PluginState {
  private transport: StateTransport = NOT_CONNECTED;

  /** Where requests go from now on (serve() and the test harness call it). */
  connect(transport: StateTransport): void {
    this.transport = transport;
  }

  /** The live value of `key`, or undefined. */
  async get(key: string): Promise<string | undefined> {
    return (await this.transport('state/get', { key }))?.value;
  }

  /** The live entry of `key` with its version and expiry, or undefined. */
  async entry(key: string): Promise<StateEntry | undefined> {
    return (await this.transport('state/get', { key })) ?? undefined;
  }

  /** Writes `value` (its expiry is now + ttlMs, or none). */
  set(key: string, value: string, options: TtlOption = {}): Promise<StateEntry> {
    return this.transport('state/set', { key, value, ...ttl(options) });
  }

  /** Deletes `key`; false when it had no live entry. */
  async delete(key: string): Promise<boolean> {
    return (await this.transport('state/delete', { key })).deleted;
  }

  /** Adds `by` (default 1) and returns the new count. A missing key counts from 0 and gets ttlMs; an existing one keeps its expiry. */
  async incr(key: string, options: TtlOption & { by?: number } = {}): Promise<number> {
    const entry = await this.transport('state/incr', { key, ...(options.by !== undefined && { by: options.by }), ...ttl(options) });
    return Number(entry.value);
  }

  /** Writes `value` only if the live value is `expected` (null: only if there is none); true when it did. */
  async compareAndSet(key: string, expected: string | null, value: string, options: TtlOption = {}): Promise<boolean> {
    return (await this.transport('state/compareAndSet', { key, expected, value, ...ttl(options) })).swapped;
  }

  /** Live entries whose key starts with `prefix`, in key order, at most `limit` (default 100); `more` when there are others after the last. */
  list(prefix = '', options: { after?: string; limit?: number } = {}): Promise<StateRequests['state/list']['result']> {
    return this.transport('state/list', { prefix, ...options });
  }
}
