// The HookDispatcher over one loaded plugin set: per hook, the plugins whose handshake listed it,
// in order (`order`, then name), and the plugins with committed hooks (the outbox's subscribers).
// Built once per set, so a call is a map lookup; the chain rules (output → input, validation,
// fail-open skipping) stay in src/lifecycle/chain.ts.
import { performance } from 'node:perf_hooks';
import { HOOK_NAMES, isCommittedHookName, type HookName } from 'keyhold-plugin-sdk';
import type { Logger } from 'pino';
import { PluginCallError, type EventSubscriber, type HookDispatcher, type HookHandler } from '../lifecycle/dispatcher.js';
import type { PluginMetrics } from './metrics.js';
import type { PluginSupervisor } from './supervisor.js';

function handlerFor(plugin: PluginSupervisor, hook: HookName, logger: Logger, metrics: PluginMetrics): HookHandler {
  const measured = metrics.forCall(plugin.name, hook);
  return {
    plugin: plugin.name,
    failureMode: plugin.entry.failureMode,
    async call(params) {
      const start = performance.now();
      try {
        const result = await plugin.call(params);
        measured.succeeded((performance.now() - start) / 1000);
        return result;
      } catch (err) {
        measured.failed(err instanceof PluginCallError ? err.kind : 'crash', (performance.now() - start) / 1000);
        throw err;
      }
    },
    skipped(skippedHook, error) {
      logger.warn({ plugin: plugin.name, hook: skippedHook, kind: error.kind, reason: error.message }, `skipped plugin "${plugin.name}" in ${skippedHook} because its failureMode is open: ${error.message}`);
      metrics.skipped(plugin.name, skippedHook);
    },
  };
}

function subscriberFor(plugin: PluginSupervisor): EventSubscriber {
  return { plugin: plugin.name, hooks: new Set(plugin.hooks.filter(isCommittedHookName)), deliver: (params) => plugin.deliver(params) };
}

/** Call order: `order` ascending, then name (by code point, so it does not depend on the locale). */
export function byCallOrder(a: PluginSupervisor, b: PluginSupervisor): number {
  return a.entry.order - b.entry.order || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** The dispatcher of one plugin set, which also knows when the requests leasing it are done. */
export interface PluginSetDispatcher extends HookDispatcher {
  lease(): () => void;
  /** Resolves once no request holds a lease (at once when none does). */
  drained(): Promise<void>;
}

export function buildDispatcher(plugins: readonly PluginSupervisor[], logger: Logger, metrics: PluginMetrics): PluginSetDispatcher {
  const ordered = [...plugins].sort(byCallOrder);
  const byHook = new Map<HookName, readonly HookHandler[]>();
  for (const hook of HOOK_NAMES) {
    const handlers = ordered.filter((p) => p.hooks.includes(hook)).map((p) => handlerFor(p, hook, logger, metrics));
    if (handlers.length > 0) byHook.set(hook, handlers);
  }
  const subscribers = ordered.filter((p) => p.hooks.some(isCommittedHookName)).map(subscriberFor);
  const none: readonly HookHandler[] = [];
  let leases = 0;
  let waiters: (() => void)[] = [];
  return {
    handlersFor: (hook) => byHook.get(hook) ?? none,
    subscribers,
    lease() {
      leases++;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        if (--leases > 0) return;
        for (const wake of waiters) wake();
        waiters = [];
      };
    },
    drained: () => (leases === 0 ? Promise.resolve() : new Promise<void>((wake) => waiters.push(wake))),
  };
}
