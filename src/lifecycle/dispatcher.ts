// The one interface through which the lifecycle engine calls hooks. The plugin host
// (src/host/dispatch.ts) implements it with real plugin processes; tests implement it
// in-process. Whatever implements it, the chain rules live in chain.ts, once.
import { committedHookName, type CommittedHookName, type CommittedParams, type HookName, type HookParams, type HookResult, type LifecyclePoint } from 'keyhold-plugin-sdk';

/** What happens when a plugin crashes, times out or is down: fail the request (closed) or skip the plugin (open). A veto is never skipped. */
export type FailureMode = 'closed' | 'open';

/** Why a plugin call did not produce a result. */
export type PluginFailureKind = 'veto' | 'crash' | 'timeout' | 'unavailable';

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
  /** Calls the plugin's hook; rejects with PluginCallError (anything else counts as a crash). */
  call(params: HookParams): Promise<HookResult>;
  /** Told when the chain skipped this plugin because of failureMode open (for logs and metrics). */
  skipped?(hook: HookName, error: PluginCallError): void;
}

/** One plugin that listed committed hooks, as the outbox's delivery sees it. */
export interface EventSubscriber {
  readonly plugin: string;
  /** The committed hooks it listed at its handshake: it gets the events of those points only. */
  readonly hooks: ReadonlySet<CommittedHookName>;
  /** Delivers one event; rejects with PluginCallError when the plugin did not take it (failed, timed out, down). */
  deliver(params: CommittedParams): Promise<void>;
}

export interface HookDispatcher {
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
