// Plugin state, the rules written once: the limits, the checks of every `state/…` request and
// what each one does to an entry. The host serves a plugin's requests with StateService over
// its store (src/host/plugin-state.ts), the test harness over MemoryStateBackend: the same
// checks, the same words and the same TTL semantics, only where entries are kept differs.
import { StateErrorCodes, type StateEntry, type StateLimits, type StateMethod, type StateRequests, STATE_METHODS } from './protocol.js';

export const STATE_LIMITS: StateLimits = {
  maxKeyBytes: 512,
  maxValueBytes: 64 * 1024,
  maxTtlMs: 366 * 24 * 60 * 60 * 1000,
  maxListLimit: 1000,
  maxKeys: 100_000,
  maxCallsInFlight: 64,
};

/** How many entries `state/list` answers with when no limit is given. */
export const DEFAULT_LIST_LIMIT = 100;

/** A refused or failed state request: the code (StateErrorCodes) and a message saying what to do. */
export class StateError extends Error {
  override name = 'StateError';

  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

const invalid = (message: string) => new StateError(StateErrorCodes.InvalidParams, message);

function checkString(value: unknown, field: string, maxBytes: number, allowEmpty: boolean): string {
  if (typeof value !== 'string') throw invalid(`${field}: expected a string, got ${value === null ? 'null' : typeof value}`);
  if (!allowEmpty && value === '') throw invalid(`${field}: must not be empty`);
  const bytes = Buffer.byteLength(value);
  if (bytes > maxBytes) throw invalid(`${field}: ${bytes} bytes, over the limit of ${maxBytes}; keep it shorter`);
  return value;
}

/** A key: a non-empty string of at most maxKeyBytes UTF-8 bytes. */
export function checkStateKey(key: unknown, field = 'key'): string {
  return checkString(key, field, STATE_LIMITS.maxKeyBytes, false);
}

function checkValue(value: unknown, field = 'value'): string {
  return checkString(value, field, STATE_LIMITS.maxValueBytes, true);
}

function checkInteger(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max)
    throw invalid(`${field}: expected an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return value;
}

function checkTtl(ttlMs: unknown): number | undefined {
  return ttlMs === undefined ? undefined : checkInteger(ttlMs, 'ttlMs', 1, STATE_LIMITS.maxTtlMs);
}

function paramsObject(method: string, params: unknown): Record<string, unknown> {
  if (params === null || typeof params !== 'object' || Array.isArray(params)) throw invalid(`${method}: params must be an object`);
  const known = FIELDS[method as StateMethod];
  const unknown = Object.keys(params).find((k) => !known.includes(k));
  if (unknown !== undefined) throw invalid(`${method}: unknown field "${unknown}"; it takes ${known.join(', ')}`);
  return params as Record<string, unknown>;
}

const FIELDS: Record<StateMethod, string[]> = {
  'state/get': ['key'],
  'state/set': ['key', 'value', 'ttlMs'],
  'state/delete': ['key'],
  'state/incr': ['key', 'by', 'ttlMs'],
  'state/compareAndSet': ['key', 'expected', 'value', 'ttlMs'],
  'state/list': ['prefix', 'after', 'limit'],
};

/** Where a plugin's entries are kept: one namespace. Reads and changes see only live (unexpired at `now`) entries. */
export interface StateBackend {
  get(key: string, now: number): Promise<StateEntry | undefined>;
  /** Live entries whose key starts with `prefix` and sorts after `after`, in key order, at most `limit`. */
  list(prefix: string, after: string, limit: number, now: number): Promise<StateEntry[]>;
  /**
   * One change, atomic and durable before it resolves: reads the live entry of `key`, asks `decide`
   * what to write (an entry, null to delete, undefined for nothing) and writes it. `liveKeys` counts
   * the namespace's live keys (asked only before creating a key).
   */
  change<T>(
    key: string,
    now: number,
    decide: (current: StateEntry | undefined, liveKeys: () => Promise<number>) => Promise<Decision<T>>,
  ): Promise<T>;
}

export interface Decision<T> {
  next: StateEntry | null | undefined;
  result: T;
}

type Result<M extends StateMethod> = StateRequests[M]['result'];

/** The entry a write leaves: the next version, the expiry from ttlMs (none without). */
function written(key: string, value: string, current: StateEntry | undefined, now: number, ttlMs: number | undefined): StateEntry {
  return { key, value, version: (current?.version ?? 0) + 1, expiresAt: ttlMs === undefined ? null : now + ttlMs };
}

/** Refuses to create a key when the namespace holds the most it may. */
async function roomFor(current: StateEntry | undefined, liveKeys: () => Promise<number>): Promise<void> {
  if (current !== undefined) return;
  const count = await liveKeys();
  if (count >= STATE_LIMITS.maxKeys)
    throw new StateError(
      StateErrorCodes.LimitReached,
      `the plugin holds ${count} live keys, the most it may (${STATE_LIMITS.maxKeys}); delete some or give them a ttlMs`,
    );
}

/** Serves one plugin's `state/…` requests over `backend`: the checks, the semantics and the limit of requests in flight. */
export class StateService {
  private inFlight = 0;

  constructor(
    private readonly backend: StateBackend,
    private readonly now: () => number = Date.now,
  ) {}

  /** Answers one request; throws StateError (InvalidParams, LimitReached) for a request it refuses. */
  async handle(method: string, params: unknown): Promise<unknown> {
    if (!(STATE_METHODS as readonly string[]).includes(method))
      throw invalid(`unknown state method ${method}; the host serves ${STATE_METHODS.join(', ')}`);
    if (this.inFlight >= STATE_LIMITS.maxCallsInFlight)
      throw new StateError(
        StateErrorCodes.LimitReached,
        `${method}: ${this.inFlight} state requests are already waiting for an answer, the most a plugin may have (${STATE_LIMITS.maxCallsInFlight}); wait for some to finish`,
      );
    this.inFlight++;
    try {
      return await this.run(method as StateMethod, paramsObject(method, params), this.now());
    } finally {
      this.inFlight--;
    }
  }

  private async run(method: StateMethod, p: Record<string, unknown>, now: number): Promise<unknown> {
    const b = this.backend;
    switch (method) {
      case 'state/get':
        return (await b.get(checkStateKey(p.key), now)) ?? null;
      case 'state/list': {
        const prefix = p.prefix === undefined ? '' : checkString(p.prefix, 'prefix', STATE_LIMITS.maxKeyBytes, true);
        const after = p.after === undefined ? '' : checkString(p.after, 'after', STATE_LIMITS.maxKeyBytes, true);
        const limit = p.limit === undefined ? DEFAULT_LIST_LIMIT : checkInteger(p.limit, 'limit', 1, STATE_LIMITS.maxListLimit);
        const entries = await b.list(prefix, after, limit + 1, now);
        return { entries: entries.slice(0, limit), more: entries.length > limit } satisfies Result<'state/list'>;
      }
      case 'state/set': {
        const [key, value, ttlMs] = [checkStateKey(p.key), checkValue(p.value), checkTtl(p.ttlMs)];
        return b.change(key, now, async (current, liveKeys) => {
          await roomFor(current, liveKeys);
          const next = written(key, value, current, now, ttlMs);
          return { next, result: next };
        });
      }
      case 'state/delete': {
        const key = checkStateKey(p.key);
        return b.change(key, now, async (current) => ({ next: current && null, result: { deleted: current !== undefined } }));
      }
      case 'state/incr': {
        const [key, ttlMs] = [checkStateKey(p.key), checkTtl(p.ttlMs)];
        const by = p.by === undefined ? 1 : checkInteger(p.by, 'by', -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
        return b.change(key, now, async (current, liveKeys) => {
          await roomFor(current, liveKeys);
          const before = current === undefined ? 0 : Number(current.value);
          if (current !== undefined && !/^-?\d+$/.test(current.value))
            throw invalid(
              `state/incr: the value of "${key}" is not an integer (${JSON.stringify(current.value.slice(0, 40))}); set or delete it first`,
            );
          const sum = before + by;
          if (!Number.isSafeInteger(before) || !Number.isSafeInteger(sum))
            throw invalid(`state/incr: "${key}" would leave the safe integer range (±${Number.MAX_SAFE_INTEGER})`);
          // An existing entry keeps its expiry: a count made with a ttlMs is a window from its first increment.
          const next =
            current === undefined
              ? written(key, String(sum), current, now, ttlMs)
              : { ...current, value: String(sum), version: current.version + 1 };
          return { next, result: next };
        });
      }
      case 'state/compareAndSet': {
        const [key, value, ttlMs] = [checkStateKey(p.key), checkValue(p.value), checkTtl(p.ttlMs)];
        const expected = p.expected === null ? null : checkValue(p.expected, 'expected');
        return b.change(key, now, async (current, liveKeys) => {
          if ((current?.value ?? null) !== expected) return { next: undefined, result: { swapped: false, entry: current ?? null } };
          await roomFor(current, liveKeys);
          const next = written(key, value, current, now, ttlMs);
          return { next, result: { swapped: true, entry: next } };
        });
      }
    }
  }
}

/** Whether `entry` is live at `now`. */
export function isLive(entry: StateEntry, now: number): boolean {
  return entry.expiresAt === null || entry.expiresAt > now;
}

/** A namespace kept in memory (the test harness's): the same semantics as the host's store, gone with the process. */
export class MemoryStateBackend implements StateBackend {
  readonly entries = new Map<string, StateEntry>();
  /** Changes run one after another, as the store's transactions do. */
  private last: Promise<unknown> = Promise.resolve();

  async get(key: string, now: number): Promise<StateEntry | undefined> {
    const entry = this.entries.get(key);
    return entry && isLive(entry, now) ? { ...entry } : undefined;
  }

  async list(prefix: string, after: string, limit: number, now: number): Promise<StateEntry[]> {
    return [...this.entries.values()]
      .filter((e) => e.key.startsWith(prefix) && e.key > after && isLive(e, now))
      .sort((a, b) => (a.key < b.key ? -1 : 1))
      .slice(0, limit)
      .map((e) => ({ ...e }));
  }

  change<T>(
    key: string,
    now: number,
    decide: (current: StateEntry | undefined, liveKeys: () => Promise<number>) => Promise<Decision<T>>,
  ): Promise<T> {
    const run = async (): Promise<T> => {
      // Expired entries are invisible, and pruned here.
      for (const [k, e] of this.entries) if (!isLive(e, now)) this.entries.delete(k);
      const { next, result } = await decide(await this.get(key, now), async () => this.entries.size);
      if (next === null) this.entries.delete(key);
      else if (next !== undefined) this.entries.set(key, { ...next });
      return result;
    };
    const done = this.last.then(run, run);
    this.last = done.catch(() => undefined);
    return done;
  }
}
