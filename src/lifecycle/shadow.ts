// Shadow mode: a plugin configured `mode: shadow` is called where it would be, with the object as
// it stands, but nothing it answers is obeyed. A veto, a change, a failure (whatever its
// failureMode) or an invalid result is reported to the handler (the host logs and counts it) and
// dropped, so a new policy can be watched on real traffic before it is switched on. Its changes to
// the state bag are its own: it sees them in its later hooks of the same request, no other plugin does.
import {
  checkHookResult,
  ContractViolation,
  jsonEqual,
  type HookContext,
  type HookName,
  type JsonObject,
  type Subject,
} from 'keyhold-plugin-sdk';
import { callHandler, PluginCallError, type HookHandler, type ShadowOutcome } from './dispatcher.js';

interface OwnState {
  set: JsonObject;
  deleted: Set<string>;
}

/** Per request (the engine keeps one context object for a whole request), each shadow plugin's own changes to the state bag. */
const ownStates = new WeakMap<HookContext, Map<string, OwnState>>();

/** The state bag as `plugin` would see it had it been enforced: the request's, with its own changes. */
function stateFor(context: HookContext, plugin: string): JsonObject {
  const own = ownStates.get(context)?.get(plugin);
  if (!own) return context.state;
  const view = { ...context.state, ...own.set };
  for (const key of own.deleted) delete view[key];
  return view;
}

function keepOwnChanges(context: HookContext, plugin: string, given: JsonObject, returned: JsonObject): void {
  const plugins = ownStates.get(context) ?? new Map<string, OwnState>();
  ownStates.set(context, plugins);
  const own = plugins.get(plugin) ?? { set: {}, deleted: new Set<string>() };
  plugins.set(plugin, own);
  for (const [key, value] of Object.entries(returned)) {
    if (Object.hasOwn(given, key) && jsonEqual(value, given[key])) continue;
    own.set[key] = value;
    own.deleted.delete(key);
  }
  for (const key of Object.keys(given)) {
    if (Object.hasOwn(returned, key)) continue;
    delete own.set[key];
    own.deleted.add(key);
  }
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The paths of the fields that differ, e.g. `meta.shell` or `meta.kv.team` (lists compared whole). */
export function changedFields(before: unknown, after: unknown, path = ''): string[] {
  if (!isMapping(before) || !isMapping(after)) return jsonEqual(before, after) ? [] : [path];
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].flatMap((key) => changedFields(before[key], after[key], path ? `${path}.${key}` : key));
}

/** Calls a shadow plugin's hook and reports what it would have done; never throws for anything the plugin does. */
export async function watchShadow(
  handler: HookHandler,
  hook: HookName,
  subject: Subject,
  request: JsonObject,
  context: HookContext,
): Promise<void> {
  const state = stateFor(context, handler.plugin);
  let outcome: ShadowOutcome | undefined;
  try {
    const result = await callHandler(handler, { hook, subject, request, context: { ...context, state } });
    const checked = checkHookResult(handler.plugin, hook, subject, result);
    keepOwnChanges(context, handler.plugin, state, checked.state);
    const fields = changedFields(subject, checked.subject);
    if (fields.length > 0) outcome = { kind: 'change', fields };
  } catch (err) {
    if (err instanceof PluginCallError)
      outcome = err.kind === 'veto' ? { kind: 'veto', message: err.message } : { kind: err.kind, message: err.message };
    else if (err instanceof ContractViolation) outcome = { kind: 'invalid', message: err.reason };
    else throw err;
  }
  if (outcome) handler.shadowed?.(hook, context.requestId, outcome);
}
