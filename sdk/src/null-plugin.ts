// The base class of every SDK plugin: all 24 PRE/POST hooks return the object unchanged, all 12
// committed hooks do nothing. A plugin extends it and overrides only the hooks it needs; serve()
// reports exactly those to the host, which then never calls the others.
import {
  PLUGIN_HOOK_NAMES,
  type CommittedHookName,
  type HookName,
  type LifecyclePoint,
  type Phase,
  type PluginHookName,
  type SubjectOf,
} from './hooks.js';
import { createPluginLogger, type PluginLogger } from './logger.js';
import type { Entity, Group } from './model.js';
import type {
  ActionParams,
  CommittedEvent,
  HookContext,
  JsonObject,
  VerifyContext,
  VerifyDeclaration,
  VerifyMode,
  VerifyResult,
} from './protocol.js';
import { PluginState } from './state-client.js';
import type { Unchanged } from './unchanged.js';

type PointOf<H extends HookName> = H extends `${Phase}${infer P extends LifecyclePoint}` ? P : never;

/** What a hook receives and returns: the entity or group its lifecycle point is about. */
export type HookSubject<H extends HookName> = SubjectOf<PointOf<H>>;

/** The request context as a hook receives it: the wire's HookContext plus a cancellation signal; `before` is of the hook's kind of object. */
export interface PluginContext<S extends Entity | Group = Entity | Group> extends HookContext<S> {
  /**
   * Aborted when the host gives up on this call (it timed out): pass it to fetch and other waits
   * so their work stops too. The hook's answer after that is ignored.
   */
  signal: AbortSignal;
}

/**
 * A hook: gets the object as it stands, the request's data and the request context, and returns
 * the object (possibly changed), or `unchanged` when it did not change it (the cheapest answer).
 * `context.state` may be changed in place; it flows to the next hook of the same request. Throw
 * `Veto` to refuse the request; any other error is a plugin failure.
 */
export type HookMethod<H extends HookName> = (
  subject: HookSubject<H>,
  request: JsonObject,
  context: PluginContext<HookSubject<H>>,
) => Hooked<HookSubject<H>>;

type Hooked<S> = S | Unchanged | Promise<S | Unchanged>;

type CommittedPointOf<H extends CommittedHookName> = H extends `committed${infer P extends LifecyclePoint}` ? P : never;

/** The event a committed hook receives: `before` and `after` are the kind of object its point is about. */
export type CommittedEventOf<H extends CommittedHookName> = CommittedEvent<SubjectOf<CommittedPointOf<H>>>;

/** What a committed hook receives beside the event. */
export interface DeliveryContext {
  /** 1 for the first delivery; above 1 this event may already have been handled (delivery is at least once). */
  attempt: number;
  /** Aborted when the host stops waiting for this delivery (its timeout): the event will be delivered again. */
  signal: AbortSignal;
}

/**
 * A committed hook: told about a change after it was committed. It cannot veto or change anything;
 * returning means done, throwing means "deliver it again later" (after maxAttempts it is dead-lettered).
 */
export type CommittedMethod<H extends CommittedHookName> = (event: CommittedEventOf<H>, context: DeliveryContext) => void | Promise<void>;

type Done = void | Promise<void>;

/** The context of a verify call: the request's, with the signal aborted when the host stops waiting. */
export interface PluginVerifyContext extends VerifyContext {
  /** How the host combines the answer with the built-in check (the server's `verifyMode`). */
  mode: VerifyMode;
  signal: AbortSignal;
}

/** An admin action: gets the caller's arguments, answers a JSON object (shown to the caller); throw `Veto` to refuse with a message. */
export type ActionMethod = (args: JsonObject, context: ActionParams['context']) => JsonObject | Promise<JsonObject>;

export class NullPlugin {
  /** The name the plugin reports; empty means the host's name for it (its file name). */
  name = '';
  version = '0.0.0';
  /** This plugin's settings from the server's YAML; set at initialize, before configure() runs. */
  config: JsonObject = {};
  /** Records reach the host's log with this plugin's name attached. */
  readonly logger: PluginLogger = createPluginLogger();
  /**
   * The plugin's own keys in the host's store (docs/plugin-guide.md, "State"): `get`, `set`,
   * `delete`, `incr`, `compareAndSet`, `list`, with an optional ttlMs. Written at once, kept over
   * restarts, shared by every server on the database; the test harness keeps them in memory.
   */
  readonly state = new PluginState();

  /** The time in epoch ms, for plugins that count time; the test harness swaps in a clock the test moves. */
  now(): number {
    return Date.now();
  }

  /**
   * Called once at initialize after `config` is set. Override to validate it: throwing rejects the
   * config with the error's message. It may also install hook methods on the instance: the hooks
   * are reported to the host after it returns.
   */
  configure(_config: JsonObject): void | Promise<void> {}

  /**
   * Called by `keyhold plugin verify` only, after initialize: check what the plugin depends on
   * outside itself (a service answers, a file can be written). Throwing fails the verification with
   * the error's message. Never called in a running server. Without it, verify says there was no
   * check to run.
   */
  selfCheck?(): void | Promise<void>;

  preEntityCreate(subject: Entity, _request: JsonObject, _context: PluginContext<Entity>): Hooked<Entity> {
    return subject;
  }
  postEntityCreate(subject: Entity, _request: JsonObject, _context: PluginContext<Entity>): Hooked<Entity> {
    return subject;
  }
  preEntityUpdate(subject: Entity, _request: JsonObject, _context: PluginContext<Entity>): Hooked<Entity> {
    return subject;
  }
  postEntityUpdate(subject: Entity, _request: JsonObject, _context: PluginContext<Entity>): Hooked<Entity> {
    return subject;
  }
  preEntityLock(subject: Entity, _request: JsonObject, _context: PluginContext<Entity>): Hooked<Entity> {
    return subject;
  }
  postEntityLock(subject: Entity, _request: JsonObject, _context: PluginContext<Entity>): Hooked<Entity> {
    return subject;
  }
  preEntityUnlock(subject: Entity, _request: JsonObject, _context: PluginContext<Entity>): Hooked<Entity> {
    return subject;
  }
  postEntityUnlock(subject: Entity, _request: JsonObject, _context: PluginContext<Entity>): Hooked<Entity> {
    return subject;
  }
  preEntityDestroy(subject: Entity, _request: JsonObject, _context: PluginContext<Entity>): Hooked<Entity> {
    return subject;
  }
  postEntityDestroy(subject: Entity, _request: JsonObject, _context: PluginContext<Entity>): Hooked<Entity> {
    return subject;
  }
  preSecretChange(subject: Entity, _request: JsonObject, _context: PluginContext<Entity>): Hooked<Entity> {
    return subject;
  }
  postSecretChange(subject: Entity, _request: JsonObject, _context: PluginContext<Entity>): Hooked<Entity> {
    return subject;
  }
  preAuthCheck(subject: Entity, _request: JsonObject, _context: PluginContext<Entity>): Hooked<Entity> {
    return subject;
  }
  postAuthCheck(subject: Entity, _request: JsonObject, _context: PluginContext<Entity>): Hooked<Entity> {
    return subject;
  }
  preGroupCreate(subject: Group, _request: JsonObject, _context: PluginContext<Group>): Hooked<Group> {
    return subject;
  }
  postGroupCreate(subject: Group, _request: JsonObject, _context: PluginContext<Group>): Hooked<Group> {
    return subject;
  }
  preGroupUpdate(subject: Group, _request: JsonObject, _context: PluginContext<Group>): Hooked<Group> {
    return subject;
  }
  postGroupUpdate(subject: Group, _request: JsonObject, _context: PluginContext<Group>): Hooked<Group> {
    return subject;
  }
  preGroupDestroy(subject: Group, _request: JsonObject, _context: PluginContext<Group>): Hooked<Group> {
    return subject;
  }
  postGroupDestroy(subject: Group, _request: JsonObject, _context: PluginContext<Group>): Hooked<Group> {
    return subject;
  }
  preMembershipAdd(subject: Entity, _request: JsonObject, _context: PluginContext<Entity>): Hooked<Entity> {
    return subject;
  }
  postMembershipAdd(subject: Entity, _request: JsonObject, _context: PluginContext<Entity>): Hooked<Entity> {
    return subject;
  }
  preMembershipRemove(subject: Entity, _request: JsonObject, _context: PluginContext<Entity>): Hooked<Entity> {
    return subject;
  }
  postMembershipRemove(subject: Entity, _request: JsonObject, _context: PluginContext<Entity>): Hooked<Entity> {
    return subject;
  }

  /**
   * The claim rules (claims.ts) of the entities whose secret this plugin verifies, read once
   * configure() has run: set them there from the plugin's settings. Only used when verify() is
   * overridden. Default: the entities an operator marked for this plugin (untyped metadata `verify.<name>:…`).
   */
  verifyClaims: string[] = ['marker'];
  /** The modes verify() works in (the first is the default); a second factor that cannot check the password lists only `also`. */
  verifyModes: VerifyMode[] = ['replace', 'also'];

  /**
   * Verifies a presented secret for an entity this plugin claims: the only call that ever carries
   * one. Declared to the host only when overridden. Answer `{ ok }`, in `also` mode optionally
   * `secret`: the part left for the built-in check. Throwing fails the login closed (unless the
   * site set `verifyFallback: builtin`).
   */
  verify(_entity: Entity, _secret: string, _context: PluginVerifyContext): VerifyResult | Promise<VerifyResult> {
    return { ok: false, reason: 'this plugin does not verify secrets' };
  }

  /** Admin actions by name, served to GLOBAL_ROOT callers (POST /v1/plugins/<plugin>/actions/<name>). */
  actions: Record<string, ActionMethod> = {};

  committedEntityCreate(_event: CommittedEvent<Entity>, _context: DeliveryContext): Done {}
  committedEntityUpdate(_event: CommittedEvent<Entity>, _context: DeliveryContext): Done {}
  committedEntityLock(_event: CommittedEvent<Entity>, _context: DeliveryContext): Done {}
  committedEntityUnlock(_event: CommittedEvent<Entity>, _context: DeliveryContext): Done {}
  committedEntityDestroy(_event: CommittedEvent<Entity>, _context: DeliveryContext): Done {}
  committedSecretChange(_event: CommittedEvent<Entity>, _context: DeliveryContext): Done {}
  committedAuthCheck(_event: CommittedEvent<Entity>, _context: DeliveryContext): Done {}
  committedGroupCreate(_event: CommittedEvent<Group>, _context: DeliveryContext): Done {}
  committedGroupUpdate(_event: CommittedEvent<Group>, _context: DeliveryContext): Done {}
  committedGroupDestroy(_event: CommittedEvent<Group>, _context: DeliveryContext): Done {}
  committedMembershipAdd(_event: CommittedEvent<Entity>, _context: DeliveryContext): Done {}
  committedMembershipRemove(_event: CommittedEvent<Entity>, _context: DeliveryContext): Done {}
}

// The compiler checks here that NullPlugin has every hook of the one list, each typed for its lifecycle point.
const everyHookTyped: { [H in HookName]: HookMethod<H> } & { [H in CommittedHookName]: CommittedMethod<H> } = NullPlugin.prototype;

/** What `plugin` declares beside its hooks: verify (when it overrides verify()) and its admin actions. */
export function declaredExtras(plugin: NullPlugin): { verify?: VerifyDeclaration; actions?: string[] } {
  const actions = Object.keys(plugin.actions);
  return {
    ...(plugin.verify !== NullPlugin.prototype.verify && { verify: { claims: [...plugin.verifyClaims], modes: [...plugin.verifyModes] } }),
    ...(actions.length > 0 && { actions }),
  };
}

/** The hooks `plugin` overrides (its own methods, not NullPlugin's defaults): what serve() reports. */
export function implementedHooks(plugin: NullPlugin): PluginHookName[] {
  return PLUGIN_HOOK_NAMES.filter((hook) => plugin[hook] !== everyHookTyped[hook]);
}
