// The twelve lifecycle points, their 24 PRE/POST hooks and their 12 committed hooks: the one list
// the host, the SDK and the docs use. PRE/POST hooks form the chain inside a request (HookName);
// committed hooks are delivered after the commit from the outbox (CommittedHookName), and a
// distinct type keeps either kind from being passed where the other belongs.
import type { Entity, Group } from './model.js';

/**
 * Each lifecycle point, in the order of the design brief, with the kind of object its hooks receive
 * and what it does to it: `update` points change an object that exists (their POST hooks get it as
 * it was in context.before), `create` and `destroy` make or remove one, `check` (AuthCheck) reads one.
 */
export const LIFECYCLE_POINTS = [
  { point: 'EntityCreate', change: 'create', subject: 'entity', trigger: 'create an entity' },
  {
    point: 'EntityUpdate',
    change: 'update',
    subject: 'entity',
    trigger: "change an entity's metadata, untyped metadata, kv, keys or capabilities",
  },
  { point: 'EntityLock', change: 'update', subject: 'entity', trigger: 'lock an entity' },
  { point: 'EntityUnlock', change: 'update', subject: 'entity', trigger: 'unlock an entity' },
  { point: 'EntityDestroy', change: 'destroy', subject: 'entity', trigger: 'destroy an entity' },
  { point: 'SecretChange', change: 'update', subject: 'entity', trigger: "set or change an entity's secret" },
  { point: 'AuthCheck', change: 'check', subject: 'entity', trigger: "validate an entity's identity (id + secret)" },
  { point: 'GroupCreate', change: 'create', subject: 'group', trigger: 'create a group' },
  { point: 'GroupUpdate', change: 'update', subject: 'group', trigger: "change a group's metadata, kv, capabilities or expansions" },
  { point: 'GroupDestroy', change: 'destroy', subject: 'group', trigger: 'destroy a group' },
  { point: 'MembershipAdd', change: 'update', subject: 'entity', trigger: 'add an entity to a group' },
  { point: 'MembershipRemove', change: 'update', subject: 'entity', trigger: 'remove an entity from a group' },
] as const;

export type LifecyclePoint = (typeof LIFECYCLE_POINTS)[number]['point'];
export type PointChange = (typeof LIFECYCLE_POINTS)[number]['change'];

const changeOf = new Map<LifecyclePoint, PointChange>(LIFECYCLE_POINTS.map((p) => [p.point, p.change]));

/** What `point` does to its object: create, update, destroy or check. */
export function pointChange(point: LifecyclePoint): PointChange {
  return changeOf.get(point)!;
}

/**
 * Every operation the server runs through the lifecycle, with its point: what hooks see in
 * context.operation and committed events carry in `operation`. One point can have several
 * operations (EntityUpdate: metadata, untyped metadata, kv, keys, capabilities).
 */
export const OPERATIONS = [
  { operation: 'entity.create', point: 'EntityCreate' },
  { operation: 'entity.update-meta', point: 'EntityUpdate' },
  { operation: 'entity.untyped-meta', point: 'EntityUpdate' },
  { operation: 'entity.kv', point: 'EntityUpdate' },
  { operation: 'entity.keys', point: 'EntityUpdate' },
  { operation: 'entity.capabilities', point: 'EntityUpdate' },
  { operation: 'entity.lock', point: 'EntityLock' },
  { operation: 'entity.unlock', point: 'EntityUnlock' },
  { operation: 'entity.destroy', point: 'EntityDestroy' },
  { operation: 'entity.set-secret', point: 'SecretChange' },
  { operation: 'auth.check', point: 'AuthCheck' },
  { operation: 'group.create', point: 'GroupCreate' },
  { operation: 'group.update', point: 'GroupUpdate' },
  { operation: 'group.untyped-meta', point: 'GroupUpdate' },
  { operation: 'group.kv', point: 'GroupUpdate' },
  { operation: 'group.capabilities', point: 'GroupUpdate' },
  { operation: 'group.expansions', point: 'GroupUpdate' },
  { operation: 'group.destroy', point: 'GroupDestroy' },
  { operation: 'group.add-member', point: 'MembershipAdd' },
  { operation: 'group.remove-member', point: 'MembershipRemove' },
] as const satisfies readonly { operation: string; point: LifecyclePoint }[];

export type OperationName = (typeof OPERATIONS)[number]['operation'];

/** The operations run at `point`, e.g. OperationAt<'EntityLock'> is 'entity.lock'. */
export type OperationAt<P extends LifecyclePoint> = Extract<(typeof OPERATIONS)[number], { point: P }>['operation'];

const pointOf = new Map<string, LifecyclePoint>(OPERATIONS.map((o) => [o.operation, o.point]));

/** True for the names OPERATIONS lists: what a host may send as context.operation or an event's operation. */
export function isOperationName(name: unknown): name is OperationName {
  return typeof name === 'string' && pointOf.has(name);
}

/** The point `operation` runs at. */
export function operationPoint(operation: OperationName): LifecyclePoint {
  return pointOf.get(operation)!;
}

/** Why `operation` cannot be what a call at `point` carries (not in OPERATIONS, or listed at another point); undefined when it can. */
export function operationProblem(operation: unknown, point: LifecyclePoint): string | undefined {
  if (!isOperationName(operation))
    return `the operation ${JSON.stringify(operation)} is not one of OPERATIONS (at ${point}: ${operationsAt(point).join(', ')}); a newer server may need a newer SDK`;
  if (operationPoint(operation) !== point) return `the operation ${operation} runs at ${operationPoint(operation)}, not at ${point}`;
  return undefined;
}

/** The operation names run at `point`, in the list's order. */
export function operationsAt(point: LifecyclePoint): OperationName[] {
  return OPERATIONS.filter((o) => o.point === point).map((o) => o.operation);
}
export type Phase = 'pre' | 'post';
export type HookName = `${Phase}${LifecyclePoint}`;
export type SubjectKind = 'entity' | 'group';

/** The object type a hook at a given point receives and returns. */
export type SubjectOf<P extends LifecyclePoint> = Extract<(typeof LIFECYCLE_POINTS)[number], { point: P }>['subject'] extends 'group'
  ? Group
  : Entity;

export interface HookSpec {
  name: HookName;
  point: LifecyclePoint;
  phase: Phase;
  subject: SubjectKind;
}

/** All 24 hooks: preEntityCreate, postEntityCreate, … postMembershipRemove. */
export const HOOKS: readonly HookSpec[] = LIFECYCLE_POINTS.flatMap(({ point, subject }) =>
  (['pre', 'post'] as const).map((phase) => ({ name: `${phase}${point}` as HookName, point, phase, subject })),
);

export const HOOK_NAMES: readonly HookName[] = HOOKS.map((h) => h.name);

const byName = new Map(HOOKS.map((h) => [h.name, h]));

export function isHookName(name: unknown): name is HookName {
  return typeof name === 'string' && byName.has(name as HookName);
}

export function hookSpec(name: HookName): HookSpec {
  const spec = byName.get(name);
  if (!spec) throw new Error(`unknown hook ${name}`);
  return spec;
}

export function hookName(phase: Phase, point: LifecyclePoint): HookName {
  return `${phase}${point}`;
}

/** The hook a plugin implements to be told, after the commit, about a change at one point. */
export type CommittedHookName = `committed${LifecyclePoint}`;
/** Every hook a plugin may list at its handshake: the chain hooks and the committed ones. */
export type PluginHookName = HookName | CommittedHookName;

export interface CommittedHookSpec {
  name: CommittedHookName;
  point: LifecyclePoint;
  subject: SubjectKind;
}

/** All 12 committed hooks: committedEntityCreate … committedMembershipRemove. */
export const COMMITTED_HOOKS: readonly CommittedHookSpec[] = LIFECYCLE_POINTS.map(({ point, subject }) => ({
  name: `committed${point}` as CommittedHookName,
  point,
  subject,
}));

export const COMMITTED_HOOK_NAMES: readonly CommittedHookName[] = COMMITTED_HOOKS.map((h) => h.name);

/** The 36 names a plugin may list at its handshake: HOOK_NAMES, then COMMITTED_HOOK_NAMES. */
export const PLUGIN_HOOK_NAMES: readonly PluginHookName[] = [...HOOK_NAMES, ...COMMITTED_HOOK_NAMES];

const committedNames = new Set<string>(COMMITTED_HOOK_NAMES);

export function isCommittedHookName(name: unknown): name is CommittedHookName {
  return typeof name === 'string' && committedNames.has(name);
}

export function isPluginHookName(name: unknown): name is PluginHookName {
  return isHookName(name) || isCommittedHookName(name);
}

export function committedHookName(point: LifecyclePoint): CommittedHookName {
  return `committed${point}`;
}
