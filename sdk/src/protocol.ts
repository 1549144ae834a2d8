// The wire contract between the keyhold host and a plugin: JSON-RPC 2.0 over the plugin's
// stdin/stdout with the Content-Length framing of the Language Server Protocol. Declared once,
// imported by the host (src/host/) and the SDK (serve). docs/protocol.md describes the same
// contract for authors in other languages.
import type { CommittedHookName, HookName, LifecyclePoint, OperationName, PluginHookName, SubjectKind } from './hooks.js';
import type { Entity, Group } from './model.js';

/** Protocol versions this SDK and host speak; the plugin picks the highest it shares with the host. */
export const PROTOCOL_VERSIONS: readonly number[] = [1];

/**
 * The largest message (JSON body) either side reads. From a plugin, a bigger one is treated as a
 * broken plugin: the call fails and the process is restarted, since the rest of its stream is lost.
 */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * Picks the highest version both sides speak. Throws an Error naming both sides' versions when
 * they share none; the plugin answers initialize with that message (code UnsupportedProtocol).
 */
export function negotiateProtocol(hostVersions: readonly number[], pluginVersions: readonly number[]): number {
  const common = pluginVersions.filter((v) => hostVersions.includes(v));
  if (common.length === 0) {
    throw new Error(
      `no protocol version in common: the host speaks ${hostVersions.join(', ') || 'none'}, the plugin speaks ${pluginVersions.join(', ')}; upgrade whichever is older`,
    );
  }
  return Math.max(...common);
}

/**
 * The host sets this variable in every plugin's environment. It is not a secret: it lets a plugin
 * run by hand say what it is instead of waiting silently for JSON-RPC on its stdin.
 */
export const MAGIC_COOKIE_KEY = 'KEYHOLD_PLUGIN_MAGIC_COOKIE';
export const MAGIC_COOKIE_VALUE = 'c0ffee-keyhold-plugin-v1';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

export interface InitializeParams {
  /** Versions the host speaks, newest last. */
  protocolVersions: number[];
  hostVersion: string;
  /** The name the host knows this plugin by (its file name or its config key). */
  pluginName: string;
  /** This plugin's settings from the server's YAML (`plugins.config.<name>`), or {}. */
  config: JsonObject;
  /** The lowest level worth sending as a log notification. */
  logLevel: LogLevel;
  /** What the host offers beyond calling hooks; absent (an older host) means nothing. */
  capabilities?: HostCapabilities;
}

/** What the host offers a plugin, told at initialize. */
export interface HostCapabilities {
  /** Present when the host keeps state for the plugin (the `state/…` requests); its limits. */
  state?: StateLimits;
}

/** The limits of plugin state (the values are STATE_LIMITS in plugin-state.ts). */
export interface StateLimits {
  /** A key's length in UTF-8 bytes, at most. */
  maxKeyBytes: number;
  /** A value's length in UTF-8 bytes, at most. */
  maxValueBytes: number;
  /** The longest time to live, ms. */
  maxTtlMs: number;
  /** The most entries one `state/list` answers with. */
  maxListLimit: number;
  /** Live keys one plugin may hold. */
  maxKeys: number;
  /** State requests one plugin may have unanswered at once. */
  maxCallsInFlight: number;
}

/** One entry of a plugin's state, as `state/…` answers give it. */
export interface StateEntry {
  key: string;
  /** A string; JSON or anything else is the plugin's business. */
  value: string;
  /** 1 when the entry was created, one more at every write to it. */
  version: number;
  /** When it expires, epoch ms, or null when it never does. */
  expiresAt: number | null;
}

/** The requests a plugin sends to the host (docs/protocol.md section 13): method → params and result. */
export interface StateRequests {
  'state/get': { params: { key: string }; result: StateEntry | null };
  /** ttlMs: the entry expires this long after the write; without it, never. */
  'state/set': { params: { key: string; value: string; ttlMs?: number }; result: StateEntry };
  'state/delete': { params: { key: string }; result: { deleted: boolean } };
  /** Adds `by` (default 1) to an integer value; a missing key counts as 0 and is created with ttlMs, an existing one keeps its expiry. */
  'state/incr': { params: { key: string; by?: number; ttlMs?: number }; result: StateEntry };
  /** Writes `value` only when the live value is `expected` (null: only when there is no live entry). */
  'state/compareAndSet': {
    params: { key: string; expected: string | null; value: string; ttlMs?: number };
    result: { swapped: boolean; entry: StateEntry | null };
  };
  /** Live entries whose key starts with `prefix`, in key order, after the key `after`, at most `limit` (default 100). */
  'state/list': { params: { prefix?: string; after?: string; limit?: number }; result: { entries: StateEntry[]; more: boolean } };
}

export type StateMethod = keyof StateRequests;
export const STATE_METHODS: readonly StateMethod[] = [
  'state/get',
  'state/set',
  'state/delete',
  'state/incr',
  'state/compareAndSet',
  'state/list',
];

export interface InitializeResult {
  name: string;
  version: string;
  /** The version the plugin chose from InitializeParams.protocolVersions. */
  protocolVersion: number;
  /** Exactly the hooks the plugin implements, PRE/POST and committed; the host calls no others. */
  hooks: PluginHookName[];
  /** Present only when the plugin verifies secrets: the host then calls `verify` for the entities it claims. */
  verify?: VerifyDeclaration;
  /** The admin actions the plugin serves (`action` requests, GLOBAL_ROOT only); absent or [] for none. */
  actions?: string[];
}

/**
 * How a verify plugin's answer combines with the built-in hash check: `replace` (the plugin alone
 * decides) or `also` (the plugin and the built-in check must both accept, e.g. a second factor).
 */
export type VerifyMode = 'replace' | 'also';
export const VERIFY_MODES: readonly VerifyMode[] = ['replace', 'also'];

/** What a verify plugin declares at its handshake. */
export interface VerifyDeclaration {
  /** Claim rules (claims.ts): the entities whose secret it verifies. */
  claims: string[];
  /** The modes it can work in; the server's `verifyMode` setting picks one (default: the first). */
  modes: VerifyMode[];
}

/** The one call that carries a presented secret: sent only to a verify plugin, only for an entity it claims. */
export interface VerifyParams {
  /** The entity logging in, as loaded (before any hook), with `secret` "" as everywhere. */
  entity: Entity;
  /** The secret as presented (in `also` mode after an earlier verify plugin, as that one left it). */
  secret: string;
  /** How the host combines this answer with the built-in check. */
  mode: VerifyMode;
  context: VerifyContext;
}

/** A hook's context without the state bag: a verify call is not part of the hook chain. */
export type VerifyContext = Omit<HookContext, 'state'>;

export interface VerifyResult {
  /** True: the secret is right as far as this plugin is concerned. */
  ok: boolean;
  /**
   * `also` mode only: the part of the secret the built-in check (or the next verify plugin) is to
   * verify, e.g. the password once a one-time code was cut off its end. Absent: the secret as sent.
   */
  secret?: string;
  /** Why it refused, for the server's log (never sent to the client). */
  reason?: string;
}

/** One admin action (e.g. a TOTP enrolment), sent when a GLOBAL_ROOT caller asks for it over the API. */
export interface ActionParams {
  action: string;
  /** The caller's arguments, as given in the API request's body. */
  args: JsonObject;
  context: { requestId: string; caller: string | null };
}

/**
 * How a request reached the server, as the server itself established it (no header of the client's
 * decides it): `api`, an HTTP API request authenticated by a bearer token; `login`, an HTTP request
 * authenticated by an id and secret in its body (/v1/auth/token, /v1/auth/check,
 * /v1/auth/change-secret); `forward-auth`, a reverse proxy's sub-request on /v1/forward-auth;
 * `server`, the server's own work (bootstrap, maintenance).
 */
export const REQUEST_SOURCES = ['api', 'login', 'forward-auth', 'server'] as const;
export type RequestSource = (typeof REQUEST_SOURCES)[number];

/** The longest user agent a hook is given; a longer one is cut to this many characters. */
export const MAX_USER_AGENT_LENGTH = 256;

/** Where a request came from, as a hook's context and the request's committed events carry it. */
export interface RequestProvenance {
  /** How the request reached the server (see REQUEST_SOURCES). Absent only from hosts older than this field (and from events they committed). */
  source?: RequestSource;
  /**
   * The client's network address when the request came over HTTP: the TCP peer, or, when that peer
   * is one of the configured trusted proxies (`api.trustedProxies`), the address it forwarded.
   * Absent for the server's own requests.
   */
  clientAddress?: string;
  /** The request's User-Agent header as the server got it (cut to MAX_USER_AGENT_LENGTH); absent when it sent none. Any client can send any. */
  userAgent?: string;
  /**
   * What the request's `keyhold-client` header declared, `name/version` (the keyhold CLI sends
   * `cli/<version>`). Informative only: any client can send it, so it is no security boundary.
   */
  client?: string;
}

/** Per-request information every hook receives. */
export interface HookContext<S extends Entity | Group = Entity | Group> extends RequestProvenance {
  /** The id of the API request, also in every host log line about it. */
  requestId: string;
  /** The operation being performed, e.g. `entity.update-meta`: one of OPERATIONS (hooks.ts), at the hook's point. */
  operation: OperationName;
  /** The authenticated entity id making the request, or null for the server itself. */
  caller: string | null;
  /** POST hooks of the points that change an existing object (LIFECYCLE_POINTS' `update`): the object as it was before this request. Never a secret or a hash. */
  before?: S;
  /** Epoch milliseconds after which the host stops waiting for this call. */
  deadline: number;
  /** A JSON bag carried through every hook and plugin of one request (PRE to POST). */
  state: JsonObject;
}

export interface HookParams {
  hook: HookName;
  /** The entity or group as it stands (for create: as requested). Never carries a secret hash. */
  subject: Entity | Group;
  /** The request's data, e.g. the new metadata; for SecretChange only, the new secret in plain text. */
  request: JsonObject;
  context: HookContext;
}

export interface HookResult {
  /**
   * The object, possibly modified; the next plugin's input. Left out when the hook did not change
   * it: the host then keeps the object it sent, with no copy to read back or to check.
   */
  subject?: Entity | Group;
  /** The state bag as this plugin leaves it. */
  state: JsonObject;
}

/**
 * One change as committed: what the outbox holds and a committed hook receives. Never carries a
 * secret or a hash (an entity's `secret` is always ""). Its request's provenance (source, client
 * address, user agent, client) as the request's hooks saw it; an event committed by a host older
 * than these fields has none of them.
 */
export interface CommittedEvent<S extends Entity | Group = Entity | Group> extends RequestProvenance {
  /** The event's number: increasing in commit order across the server, never reused. */
  seq: number;
  point: LifecyclePoint;
  /** The operation, as hooks saw it in context.operation, e.g. `entity.update-meta`: one of OPERATIONS (hooks.ts). */
  operation: OperationName;
  subjectKind: SubjectKind;
  /** The entity id or group name the event is about. */
  subjectKey: string;
  /** The object before the change; null for a create. */
  before: S | null;
  /** The object as committed; null for a destroy. */
  after: S | null;
  /** The request's data as PRE/POST hooks saw it, without `secret` (SecretChange's plain text). */
  request: JsonObject;
  /** The API request's id: with `seq`, the key to recognise an event delivered again. */
  requestId: string;
  caller: string | null;
  /** When it was committed, ISO 8601 UTC. */
  at: string;
}

export interface CommittedParams {
  hook: CommittedHookName;
  event: CommittedEvent;
  /** 1 for the first delivery; above 1 the plugin may already have handled this event (at-least-once). */
  attempt: number;
}

export interface LogParams {
  level: LogLevel;
  msg: string;
  /** Structured fields of the record (the object given before the message). */
  fields?: JsonObject;
}

/** Error codes a plugin answers with in a JSON-RPC error. Anything else counts as a plugin failure. */
export const PluginErrorCodes = {
  /** A deliberate refusal: the request is denied with the plugin's message (HTTP 4xx). */
  Veto: -32001,
  /** initialize: the plugin refuses the config it was given; the message says why. */
  ConfigRejected: -32002,
  /** initialize: no protocol version in common. */
  UnsupportedProtocol: -32003,
  /** The plugin was asked for a hook (or an action) it does not implement. */
  UnknownHook: -32004,
} as const;

/** Error codes the host answers a plugin's `state/…` request with. */
export const StateErrorCodes = {
  /** The params break a rule (a key or value too long, a bad ttlMs, incr on a value that is no integer): the message says which. */
  InvalidParams: -32602,
  /** The plugin holds the most keys it may, or has the most state requests unanswered: nothing was written. */
  LimitReached: -32010,
  /** The host could not read or write its store (busy, full, failing), or offers no state: nothing was written. */
  Unavailable: -32011,
} as const;
