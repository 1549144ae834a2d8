// What the identity, store and lifecycle tests share: a real store (SQLite unless given another) with the engine and the
// identity operations on top, an in-process dispatcher whose plugins are JS functions, a full
// read-back of the store, and an assertion on KeyholdError codes.
import assert from 'node:assert/strict';
import type { HookName, HookParams, HookResult, JsonObject } from 'keyhold-plugin-sdk';
import { isKeyholdError, type ErrorCode, type KeyholdError } from '../../src/errors.js';
import {
  NO_PLUGINS,
  PluginCallError,
  type FailureMode,
  type HookDispatcher,
  type HookHandler,
  type PluginMode,
  type ShadowOutcome,
} from '../../src/lifecycle/dispatcher.js';
import { LifecycleEngine, serverRequest, type RequestInfo } from '../../src/lifecycle/engine.js';
import { Identity } from '../../src/identity/identity.js';
import type { HashParams } from '../../src/identity/secrets.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/store.js';

/** Far below OWASP's setting: tests hash many secrets and only need argon2id's behaviour, not its cost. */
export const FAST_HASH: HashParams = { memoryCost: 1024, timeCost: 1, parallelism: 1 };

/** The server itself asking: it may do everything (GLOBAL_ROOT). */
export const INFO: RequestInfo = serverRequest('test-request');

export interface Harness<S extends Store = Store> {
  store: S;
  engine: LifecycleEngine;
  identity: Identity;
  close(): Promise<void>;
}

/** The engine and identity over `store` (default: a fresh SQLite store; forEachStore's openStore gives one of each kind). */
export function openHarness<S extends Store = SqliteStore>(
  dispatcher: HookDispatcher = NO_PLUGINS,
  store: S = SqliteStore.open(':memory:') as Store as S,
): Harness<S> {
  const engine = new LifecycleEngine(store, dispatcher);
  const identity = new Identity(store, engine, { hash: FAST_HASH });
  return { store, engine, identity, close: () => store.close() };
}

/** One hook of an in-process plugin: gets the call, returns the (possibly changed) subject and state, or throws. */
export type TestHook = (params: HookParams) => HookResult | Promise<HookResult>;

export interface TestPlugin {
  name: string;
  failureMode?: FailureMode;
  mode?: PluginMode;
  exempt?: string[];
  hooks: Partial<Record<HookName, TestHook>>;
}

/** A HookDispatcher over in-process plugins, called in the order given; records every call. */
export class TestDispatcher implements HookDispatcher {
  /** `plugin:hook` for every call made, in order. */
  readonly calls: string[] = [];
  /** `plugin:hook` for every call skipped under failureMode open. */
  readonly skips: string[] = [];
  /** `plugin:hook` and what a shadow plugin would have done, for every shadow call that was not a plain pass. */
  readonly shadowed: { call: string; outcome: ShadowOutcome }[] = [];
  /** `plugin:hook:entity` for every call not made because the subject was exempt. */
  readonly exempted: string[] = [];

  constructor(private readonly plugins: readonly TestPlugin[]) {}

  handlersFor(hook: HookName): readonly HookHandler[] {
    return this.plugins.flatMap((plugin) => {
      const fn = plugin.hooks[hook];
      if (!fn) return [];
      const handler: HookHandler = {
        plugin: plugin.name,
        failureMode: plugin.failureMode ?? 'closed',
        mode: plugin.mode ?? 'enforce',
        exempt: new Set(plugin.exempt),
        call: async (params) => {
          this.calls.push(`${plugin.name}:${hook}`);
          // A deep copy, as the wire would make: a plugin cannot reach the server's objects.
          return fn(structuredClone(params));
        },
        skipped: (h: HookName) => {
          this.skips.push(`${plugin.name}:${h}`);
        },
        shadowed: (h, _requestId, outcome) => {
          this.shadowed.push({ call: `${plugin.name}:${h}`, outcome });
        },
        exempted: (h, _requestId, entity) => {
          this.exempted.push(`${plugin.name}:${h}:${entity}`);
        },
      };
      return [handler];
    });
  }
}

/** A hook that vetoes like a plugin throwing the SDK's Veto. */
export function veto(message: string): TestHook {
  return () => {
    throw new PluginCallError('veto', message);
  };
}

/** Everything the store holds, secret hashes and memberships included, for "nothing changed" checks. */
export async function snapshot(store: Store): Promise<JsonObject> {
  const everything = { limit: 1_000_000 };
  const entities = await store.reader.searchEntities(everything);
  const groups = await store.reader.searchGroups(everything);
  const members: Record<string, string[]> = {};
  for (const g of groups) members[g.name] = await store.reader.directMembers(g.name);
  return JSON.parse(JSON.stringify({ entities, groups, members })) as JsonObject;
}

/** Asserts that `promise` rejects with a KeyholdError of `code` and returns it for further checks. */
export async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<KeyholdError> {
  let caught: unknown;
  await assert.rejects(promise, (err: unknown) => {
    caught = err;
    return true;
  });
  assert.ok(isKeyholdError(caught), `expected a KeyholdError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

/** Runs `attempt`, which must fail with `code`, and checks the store is exactly as before. */
export async function refusedWithoutChange(
  store: Store,
  attempt: () => Promise<unknown>,
  code: ErrorCode,
  message?: RegExp,
): Promise<KeyholdError> {
  const before = await snapshot(store);
  const err = await rejectsWith(attempt(), code, message);
  assert.deepEqual(await snapshot(store), before, `the store changed although ${code} was returned`);
  return err;
}
