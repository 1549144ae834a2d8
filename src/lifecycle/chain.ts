// Runs one hook through every plugin that implements it: in order, each plugin's output the
// next one's input, the state bag threaded through, every result checked before it is used by
// the SDK's contract (the rules its test harness applies too). A plugin in shadow mode is called
// but never obeyed (shadow.ts); a plugin is not called at all for a subject it exempts (break-glass).
import {
  checkHookResult,
  ContractViolation,
  jsonEqual,
  pluginProblem,
  type CheckedResult,
  type HookContext,
  type HookName,
  type JsonObject,
  type Subject,
} from 'keyhold-plugin-sdk';
import { KeyholdError } from '../errors.js';
import { callHandler, PLUGIN_FAILURE_CODES, type HookDispatcher, type HookHandler, type PluginCallError } from './dispatcher.js';
import { watchShadow } from './shadow.js';

export type { Subject } from 'keyhold-plugin-sdk';

function pluginError(code: KeyholdError['code'], plugin: string, hook: HookName, reason: string): KeyholdError {
  return new KeyholdError(code, pluginProblem(plugin, hook, reason, code === 'KH_ERR_PLUGIN_VETO'), { plugin, hook, reason });
}

/** The entity id when `subject` is an entity `handler` exempts. */
function exemptEntity(handler: HookHandler, subject: Subject): string | undefined {
  return handler.exempt !== undefined && 'id' in subject && handler.exempt.has(subject.id) ? subject.id : undefined;
}

function checked(handler: HookHandler, hook: HookName, before: Subject, result: unknown): CheckedResult {
  try {
    return checkHookResult(handler.plugin, hook, before, result);
  } catch (err) {
    if (err instanceof ContractViolation) throw pluginError('KH_ERR_PLUGIN_INVALID_RESULT', handler.plugin, hook, err.reason);
    throw err;
  }
}

/**
 * Calls `hook` on every plugin that implements it and returns the final object. `context.state`
 * is updated in place so that it flows on to the next hook of the same request.
 * Throws a KeyholdError naming the plugin and hook when one vetoes, fails or returns a bad object.
 */
export async function runHook<S extends Subject>(
  dispatcher: HookDispatcher,
  hook: HookName,
  subject: S,
  request: JsonObject,
  context: HookContext,
): Promise<S> {
  let current: Subject = subject;
  for (const handler of dispatcher.handlersFor(hook)) {
    // The id cannot have been changed by the plugins before (the contract), so this is the request's subject.
    const exempt = exemptEntity(handler, current);
    if (exempt !== undefined) {
      handler.exempted?.(hook, context.requestId, exempt);
      continue;
    }
    if (handler.mode === 'shadow') {
      await watchShadow(handler, hook, current, request, context);
      continue;
    }
    let result: unknown;
    try {
      result = await callHandler(handler, { hook, subject: current, request, context: { ...context } });
    } catch (err) {
      const failure = err as PluginCallError;
      if (failure.kind !== 'veto' && handler.failureMode === 'open') {
        handler.skipped?.(hook, failure);
        continue;
      }
      throw pluginError(PLUGIN_FAILURE_CODES[failure.kind], handler.plugin, hook, failure.message);
    }
    const next = checked(handler, hook, current, result);
    // An unchanged object stays the same object: the engine saves POST's output only when it is a
    // new one, so a pass-through POST hook (most are) costs no write and no fsync.
    if (!jsonEqual(next.subject, current)) current = next.subject;
    context.state = next.state;
  }
  return current as S;
}
