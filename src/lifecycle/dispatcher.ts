// The one interface through which the lifecycle engine calls hooks. The plugin host
// (src/host/dispatch.ts) implements it with real plugin processes; tests implement it
// in-process. Whatever implements it, the chain rules live in chain.ts, once.
import {
  committedHookName,
  DEADLINE_PASSED,
  deadlinePassed,
  type CommittedHookName,
  type CommittedParams,
  type HookName,
  type HookParams,
  type HookResult,
  type LifecyclePoint,
  type ClaimRule,
  type VerifyMode,
  type VerifyParams,
  type VerifyResult,
} from 'keyhold-plugin-sdk';

/** What happens when a plugin crashes, times out or is down: fail the request (closed) or skip the plugin (open). A veto is never skipped. */
export type FailureMode = 'closed' | 'open';

/** Whether the chain obeys a plugin (enforce) or only calls it and reports what it would have done (shadow). */
export type PluginMode = 'enforce' | 'shadow';

/** Why a plugin call did not produce a result. */
export type PluginFailureKind = 'veto' | 'crash' | 'timeout' | 'unavailable';

/** What a shadow plugin would have done to a request, had it been enforced. */
export type ShadowOutcome =
  | { kind: 'veto'; message: string }
  /** `fields`: the paths it changed, e.g. `meta.shell`. */
  | { kind: 'change'; fields: string[] }
  | { kind: Exclude<PluginFailureKind, 'veto'> | 'invalid'; message: string };

/** The catalog error a plugin call's failure becomes, by its kind: the same for hooks and admin actions. */
export const PLUGIN_FAILURE_CODES = {
  veto: 'KH_ERR_PLUGIN_VETO',
  crash: 'KH_ERR_PLUGIN_FAILED',
  timeout: 'KH_ERR_PLUGIN_TIMEOUT',
  unavailable: 'KH_ERR_PLUGIN_UNAVAILABLE',
} as const satisfies Record<PluginFailureKind, string>;

/** Thrown by HookHandler.call. `message` is the plugin's own message (for a veto) or what went wrong. */
export class PluginCallError extends Error {
  constructor(
    readonly kind: PluginFailureKind,
    message: string,
  ) {
    super(message);
    this.name = 'PluginCallError';
  }
}

/** One plugin as the chain sees it. */
export interface HookHandler {
  readonly plugin: string;
  readonly failureMode: FailureMode;
  /** Default 'enforce'. */
  readonly mode?: PluginMode;
  /** Break-glass: ids of the entities this plugin is never called for as the subject of a hook. */
  readonly exempt?: ReadonlySet<string>;
  /** Calls the plugin's hook; rejects with PluginCallError (anything else counts as a crash). */
  call(params: HookParams): Promise<HookResult>;
  /** Told when the chain skipped this plugin because of failureMode open (for logs and metrics). */
  skipped?(hook: HookName, error: PluginCallError): void;
  /** Told what a shadow plugin would have done in one request; nothing of it was applied. */
  shadowed?(hook: HookName, requestId: string, outcome: ShadowOutcome): void;
  /** Told when the chain did not call this plugin because the subject is exempt. */
  exempted?(hook: HookName, requestId: string, entity: string): void;
}

/** Calls `handler`, or fails as a timeout once the request's deadline has passed; any failure rejects as a PluginCallError. */
export async function callHandler(handler: HookHandler, params: HookParams): Promise<unknown> {
  try {
    if (deadlinePassed(params.context, Date.now())) throw new PluginCallError('timeout', DEADLINE_PASSED);
    return await handler.call(params);
  } catch (err) {
    throw err instanceof PluginCallError ? err : new PluginCallError('crash', err instanceof Error ? err.message : String(err));
  }
}

/** One plugin that listed committed hooks, as the outbox's delivery sees it. */
export interface EventSubscriber {
  readonly plugin: string;
  /** The committed hooks it listed at its handshake: it gets the events of those points only. */
  readonly hooks: ReadonlySet<CommittedHookName>;
  /** Delivers one event; rejects with PluginCallError when the plugin did not take it (failed, timed out, down). */
  deliver(params: CommittedParams): Promise<void>;
}

/** A plugin that verifies the secret of the entities it claims (docs/protocol.md "verify"), as AuthCheck sees it. */
export interface Verifier {
  readonly plugin: string;
  readonly claims: readonly ClaimRule[];
  readonly mode: VerifyMode;
  /** When it cannot answer (down, crashed, timed out): refuse the login (`none`) or check as if it did not claim the entity (`builtin`). */
  readonly fallback: 'none' | 'builtin';
  /** Break-glass: the entities it is never asked about (the built-in check decides for them). */
  readonly exempt: ReadonlySet<string>;
  /** Rejects with PluginCallError when the plugin gives no answer (an error answer counts as a crash). */
  verify(params: VerifyParams): Promise<VerifyResult>;
  /** Told when it was not asked because the entity is exempt. */
  exempted?(requestId: string, entity: string): void;
}

export interface HookDispatcher {
  /** The verify plugins, in call order. None (or absent): every secret is checked by the built-in hash check alone. */
  readonly verifiers?: readonly Verifier[];
  /** The plugins that implement `hook`, in call order. Empty means the hook costs nothing. */
  handlersFor(hook: HookName): readonly HookHandler[];
  /** The plugins with committed hooks, in call order. None (or absent): no event is written at all. */
  readonly subscribers?: readonly EventSubscriber[];
  /**
   * Marks one request as using this set until the returned function is called, so that a set
   * replaced by a reload keeps its processes until the requests that started on it are done.
   */
  lease?(): () => void;
}

/** True when a plugin of the set listed `point`'s committed hook: only then is an event written for it. */
export function wantsEvent(dispatcher: HookDispatcher, point: LifecyclePoint): boolean {
  const hook = committedHookName(point);
  return dispatcher.subscribers?.some((s) => s.hooks.has(hook)) ?? false;
}

/** The dispatcher of a server with no plugins loaded. */
export const NO_PLUGINS: HookDispatcher = { handlersFor: () => [] };
