// Runs one hook through every plugin that implements it: in order, each plugin's output the
// next one's input, the state bag threaded through, every result checked before it is used.
import { hookSpec, jsonEqual, parseEntity, parseGroup, SchemaError, type Entity, type Group, type HookContext, type HookName, type JsonObject } from 'keyhold-plugin-sdk';
import { KeyholdError } from '../errors.js';
import { PluginCallError, type HookDispatcher, type HookHandler } from './dispatcher.js';

export type Subject = Entity | Group;

const FAILURE_CODES = {
  veto: 'KH_ERR_PLUGIN_VETO',
  crash: 'KH_ERR_PLUGIN_FAILED',
  timeout: 'KH_ERR_PLUGIN_TIMEOUT',
  unavailable: 'KH_ERR_PLUGIN_UNAVAILABLE',
} as const;

function pluginError(code: KeyholdError['code'], plugin: string, hook: HookName, reason: string): KeyholdError {
  const what = code === 'KH_ERR_PLUGIN_VETO' ? 'refused the request' : 'failed';
  return new KeyholdError(code, `plugin "${plugin}" ${what} in ${hook}: ${reason}`, { plugin, hook, reason });
}

/** The fields a plugin may not change: they identify the object, or are kept by the server alone. */
function changedImmutable(before: Subject, after: Subject): string | undefined {
  if ('id' in before) {
    const a = after as Entity;
    if (a.id !== before.id) return 'id';
    if (a.number !== before.number) return 'number';
    if (a.secret !== '') return 'secret';
    if (a.meta.groups.join('\n') !== before.meta.groups.join('\n')) return 'meta.groups';
    return undefined;
  }
  const a = after as Group;
  if (a.name !== before.name) return 'name';
  if (a.number !== before.number) return 'number';
  return undefined;
}

function checkResult(handler: HookHandler, hook: HookName, before: Subject, result: unknown): { subject: Subject; state: JsonObject } {
  const invalid = (reason: string) => pluginError('KH_ERR_PLUGIN_INVALID_RESULT', handler.plugin, hook, reason);
  if (result === null || typeof result !== 'object') throw invalid('the result is not an object with subject and state');
  const { subject, state } = result as { subject?: unknown; state?: unknown };
  if (state === null || typeof state !== 'object' || Array.isArray(state)) throw invalid('the result has no state object');
  // No subject: the plugin did not change it (docs/protocol.md section 5).
  if (subject === undefined) return { subject: before, state: state as JsonObject };
  let parsed: Subject;
  try {
    parsed = hookSpec(hook).subject === 'entity' ? parseEntity(subject, 'subject') : parseGroup(subject, 'subject');
  } catch (err) {
    if (err instanceof SchemaError) throw invalid(err.message);
    throw err;
  }
  const field = changedImmutable(before, parsed);
  if (field) throw invalid(`it changed ${field}, which plugins may not change`);
  return { subject: parsed, state: state as JsonObject };
}

/**
 * Calls `hook` on every plugin that implements it and returns the final object. `context.state`
 * is updated in place so that it flows on to the next hook of the same request.
 * Throws a KeyholdError naming the plugin and hook when one vetoes, fails or returns a bad object.
 */
export async function runHook<S extends Subject>(dispatcher: HookDispatcher, hook: HookName, subject: S, request: JsonObject, context: HookContext): Promise<S> {
  let current: Subject = subject;
  for (const handler of dispatcher.handlersFor(hook)) {
    let result: unknown;
    try {
      // The request's deadline: once it has passed, no further call is started (treated as a timeout).
      if (Date.now() > context.deadline) throw new PluginCallError('timeout', "the request's deadline passed before this call");
      result = await handler.call({ hook, subject: current, request, context: { ...context } });
    } catch (err) {
      const failure = err instanceof PluginCallError ? err : new PluginCallError('crash', err instanceof Error ? err.message : String(err));
      if (failure.kind !== 'veto' && handler.failureMode === 'open') {
        handler.skipped?.(hook, failure);
        continue;
      }
      throw pluginError(FAILURE_CODES[failure.kind], handler.plugin, hook, failure.message);
    }
    const checked = checkResult(handler, hook, current, result);
    // An unchanged object stays the same object: the engine saves POST's output only when it is a
    // new one, so a pass-through POST hook (most are) costs no write and no fsync.
    if (!jsonEqual(checked.subject, current)) current = checked.subject;
    context.state = checked.state;
  }
  return current as S;
}
