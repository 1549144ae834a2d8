// The rules a hook's result must follow, written once: the server's chain applies them to what a
// plugin process answers, and the test harness (testing/harness.ts) to what a plugin returns
// in-process, with the same words. A plugin that passes its own tests therefore cannot be
// refused in the server for a rule its tests did not apply.
import { hookSpec, type HookName } from './hooks.js';
import { parseEntity, parseGroup, SchemaError, type Entity, type Group } from './model.js';
import type { HookContext, JsonObject } from './protocol.js';
import { unchanged } from './unchanged.js';

/** The object a hook is about. */
export type Subject = Entity | Group;

/** How the server words a plugin's veto (`refused`) or failure in the error its client gets. */
export function pluginProblem(plugin: string, hook: HookName, reason: string, refused = false): string {
  return `plugin "${plugin}" ${refused ? 'refused the request' : 'failed'} in ${hook}: ${reason}`;
}

/** A hook result that breaks the contract. `reason` is the rule broken; the message is the server's. */
export class ContractViolation extends Error {
  constructor(
    readonly plugin: string,
    readonly hook: HookName,
    readonly reason: string,
  ) {
    super(pluginProblem(plugin, hook, reason));
    this.name = 'ContractViolation';
  }
}

/** Why no call is started once the request's deadline has passed (the server treats it as a timeout). */
export const DEADLINE_PASSED = "the request's deadline passed before this call";

/** True once `now` (epoch ms) is past the request's deadline: no further hook call may start. */
export function deadlinePassed(context: Pick<HookContext, 'deadline'>, now: number): boolean {
  return now > context.deadline;
}

/**
 * What a hook method returned must be an object or `unchanged`: a hook that forgot its `return`
 * would otherwise pass for "unchanged" and an edit made in place be lost. Returns the problem, or undefined.
 */
export function returnedProblem(hook: HookName, returned: unknown): string | undefined {
  if (returned === unchanged || (returned !== null && typeof returned === 'object')) return undefined;
  return `${hook} returned ${returned === null ? 'null' : typeof returned}: return the object it was given, changed or not (or unchanged)`;
}

/** The first field a plugin may not change that `after` changes: what identifies the object, or what the server alone keeps. */
export function changedImmutable(before: Subject, after: Subject): string | undefined {
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

export interface CheckedResult {
  /** The object to go on with: `before` itself when the result left it out (unchanged). */
  subject: Subject;
  state: JsonObject;
}

/**
 * Checks a hook result as it arrives on the wire (`{subject?, state}`, docs/protocol.md section 5)
 * against the object `before` that was sent. Throws ContractViolation naming `plugin` and `hook`.
 */
export function checkHookResult(plugin: string, hook: HookName, before: Subject, result: unknown): CheckedResult {
  const violation = (reason: string) => new ContractViolation(plugin, hook, reason);
  if (result === null || typeof result !== 'object') throw violation('the result is not an object with subject and state');
  const { subject, state } = result as { subject?: unknown; state?: unknown };
  if (state === null || typeof state !== 'object' || Array.isArray(state)) throw violation('the result has no state object');
  // No subject: the plugin did not change it.
  if (subject === undefined) return { subject: before, state: state as JsonObject };
  let parsed: Subject;
  try {
    parsed = hookSpec(hook).subject === 'entity' ? parseEntity(subject, 'subject') : parseGroup(subject, 'subject');
  } catch (err) {
    if (err instanceof SchemaError) throw violation(err.message);
    throw err;
  }
  const field = changedImmutable(before, parsed);
  if (field) throw violation(`it changed ${field}, which plugins may not change`);
  return { subject: parsed, state: state as JsonObject };
}
