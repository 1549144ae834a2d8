// The HookDispatcher over one loaded plugin set: per hook, the plugins whose handshake listed it,
// in order (`order`, then name), each with its mode and exempt entities, the plugins with
// committed hooks (the outbox's subscribers) and the verify plugins (verifiers.ts). Built once per set, so a call is a map lookup; the
// chain rules (output → input, validation, fail-open skipping, shadow mode, exemptions) stay in
// src/lifecycle/. Here: the logs and metrics of what the chain reports.
import { HOOK_NAMES, isCommittedHookName, type HookName } from 'keyhold-plugin-sdk';
import type { Logger } from 'pino';
import { type EventSubscriber, type HookDispatcher, type HookHandler, type ShadowOutcome } from '../lifecycle/dispatcher.js';
import { measureCall, type PluginMetrics } from './metrics.js';
import type { PluginSupervisor } from './supervisor.js';
import { verifierFor } from './verifiers.js';

/** The log line of what a shadow plugin would have done. */
function shadowMessage(plugin: string, hook: HookName, outcome: ShadowOutcome): string {
  if (outcome.kind === 'veto') return `shadow plugin "${plugin}" would have refused the request in ${hook}: ${outcome.message}`;
  if (outcome.kind === 'change') return `shadow plugin "${plugin}" would have changed ${outcome.fields.join(', ')} in ${hook}`;
  return `shadow plugin "${plugin}" failed in ${hook} (${outcome.kind}), not enforced: ${outcome.message}`;
}

function handlerFor(
  plugin: PluginSupervisor,
  hook: HookName,
  logger: Logger,
  metrics: PluginMetrics,
  exempt: ReadonlySet<string>,
): HookHandler {
  const measured = metrics.forCall(plugin.name, hook);
  return {
    plugin: plugin.name,
    failureMode: plugin.entry.failureMode,
    mode: plugin.entry.mode,
    exempt,
    call: (params) => measureCall(measured, () => plugin.call(params)),
    skipped(skippedHook, error) {
      logger.warn(
        { plugin: plugin.name, hook: skippedHook, kind: error.kind, reason: error.message },
        `skipped plugin "${plugin.name}" in ${skippedHook} because its failureMode is open: ${error.message}`,
      );
      metrics.skipped(plugin.name, skippedHook);
    },
    shadowed(shadowHook, reqId, outcome) {
      // A change is what most policies are for: worth seeing, not a warning.
      const level = outcome.kind === 'change' ? 'info' : 'warn';
      logger[level]({ reqId, plugin: plugin.name, hook: shadowHook, shadow: outcome }, shadowMessage(plugin.name, shadowHook, outcome));
      metrics.shadowed(plugin.name, shadowHook, outcome);
    },
    exempted(exemptHook, reqId, entity) {
      logger.info(
        { reqId, plugin: plugin.name, hook: exemptHook, entity },
        `break-glass: plugin "${plugin.name}" not called in ${exemptHook}: entity "${entity}" is exempt`,
      );
      metrics.exempted(plugin.name, exemptHook);
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

/**
 * `exemptions`: each plugin's exempt entities as resolved for this set (break-glass.ts); a plugin
 * missing from it exempts those its settings list.
 */
export function buildDispatcher(
  plugins: readonly PluginSupervisor[],
  logger: Logger,
  metrics: PluginMetrics,
  exemptions: ReadonlyMap<string, ReadonlySet<string>> = new Map(),
): PluginSetDispatcher {
  const ordered = [...plugins].sort(byCallOrder);
  const exemptOf = (p: PluginSupervisor) => exemptions.get(p.name) ?? new Set(p.entry.exempt);
  const byHook = new Map<HookName, readonly HookHandler[]>();
  for (const hook of HOOK_NAMES) {
    const handlers = ordered.filter((p) => p.hooks.includes(hook)).map((p) => handlerFor(p, hook, logger, metrics, exemptOf(p)));
    if (handlers.length > 0) byHook.set(hook, handlers);
  }
  const subscribers = ordered.filter((p) => p.hooks.some(isCommittedHookName)).map(subscriberFor);
  const verifiers = ordered.flatMap((p) => verifierFor(p, logger, metrics, exemptOf(p)) ?? []);
  const none: readonly HookHandler[] = [];
  let leases = 0;
  let waiters: (() => void)[] = [];
  return {
    handlersFor: (hook) => byHook.get(hook) ?? none,
    subscribers,
    verifiers,
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
