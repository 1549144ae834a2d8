// The request lifecycle every mutating operation and AuthCheck goes through, in named stages:
//
//   lock subjects ─► load ─► PRE hooks ─► change (checks + the change, in memory) ─► POST hooks
//     ─► commit: one short write transaction (versions unchanged? re-check, write, event) ─► committed
//
// Hooks never run while the store's write lock is held: one slow plugin delays only the requests
// on the same subject (they wait for its per-subject lock), never the rest of the server. The
// write transaction re-validates what the hooks' time could have changed (the subjects' versions,
// then each step's own checks against the data as committed), so a failure at any stage writes
// nothing and emits no event. A subject changed underneath (another server process) fails the
// request with KH_ERR_CONFLICT: hooks run once per request, never again for it.
import {
  hookName,
  operationProblem,
  pointChange,
  type Capability,
  type HookContext,
  type HookName,
  type JsonObject,
  type LifecyclePoint,
  type OperationName,
  type RequestProvenance,
  type RequestSource,
} from 'keyhold-plugin-sdk';
import { KeyholdError } from '../errors.js';
import type { Store, StoreReader, StoreTransaction, SubjectRef } from '../store/store.js';
import { runHook, type Subject } from './chain.js';
import { wantsEvent, type HookDispatcher } from './dispatcher.js';
import { LockWaitExpired, SubjectLocks } from './subject-locks.js';

/** Who asked and how, for hook contexts, logs and the authorization rules that depend on the data. */
export interface RequestInfo {
  requestId: string;
  /** The authenticated entity id, or null for the server itself (bootstrap, tests) and for anonymous requests (login). */
  caller: string | null;
  /**
   * What the caller may do: its effective capabilities as its token carries them (none for an
   * anonymous request); the server itself acts with GLOBAL_ROOT (serverRequest). The identity
   * layer checks protected subjects against these (src/identity/protection.ts).
   */
  capabilities: readonly Capability[];
  /** How the request reached the server (the SDK's REQUEST_SOURCES); hooks see it as context.source. Default: 'server'. */
  source?: RequestSource;
  /**
   * The client's network address, for requests that came over HTTP: the TCP peer, or the address
   * a trusted proxy forwarded (src/api/client-address.ts). What the login throttle counts, and
   * what hooks see as context.clientAddress.
   */
  clientAddress?: string;
  /** The request's User-Agent, cut to the SDK's MAX_USER_AGENT_LENGTH (context.userAgent). */
  userAgent?: string;
  /** What the request's keyhold-client header declared, e.g. `cli/1.4.0` (context.client); informative only. */
  client?: string;
  /** When the request arrived (epoch ms; default: when the engine got it): its deadline counts from here, waits for locks included. */
  arrivedAt?: number;
}

/** A request made by the server itself (bootstrap, maintenance): it may do everything. */
export function serverRequest(requestId: string): RequestInfo {
  return { requestId, caller: null, capabilities: ['GLOBAL_ROOT'], source: 'server' };
}

/** Where the request came from, as its hooks' context and its committed events carry it: the fields it lacks left out. */
function provenance({ source = 'server', clientAddress, userAgent, client }: RequestInfo): RequestProvenance {
  return {
    source,
    ...(clientAddress !== undefined && { clientAddress }),
    ...(userAgent !== undefined && { userAgent }),
    ...(client !== undefined && { client }),
  };
}

/** The context the request's hooks start from: the request's side of RequestInfo, the fields it lacks left out. */
export function hookContext(info: RequestInfo, operation: OperationName, deadline: number): HookContext {
  return { requestId: info.requestId, operation, caller: info.caller, ...provenance(info), deadline, state: {} };
}

/** One operation, described as the stages the engine runs. */
export interface LifecycleStep<S extends Subject> {
  point: LifecyclePoint;
  /** Hooks see it as context.operation; the SDK's OPERATIONS lists each with its point. */
  operation: OperationName;
  /** The request data hooks see (for SecretChange the new secret in plain text, never for AuthCheck). */
  request: JsonObject;
  /** What it reads and writes: locked for the whole request, and unchanged since the load at commit (a create names the subject it creates). */
  subjects: readonly SubjectRef[];
  /**
   * Loads the object as it stands (for create: as requested); `previous`: the object the step
   * before it in the request produced; `dispatcher`: the plugin set this request runs on (AuthCheck asks its verify plugins).
   */
  load(reader: StoreReader, previous: Subject | undefined, dispatcher: HookDispatcher): Promise<S>;
  /** Built-in checks against the data as read and the change itself, applied to PRE's output in memory; writes nothing. */
  change(reader: StoreReader, subject: S): Promise<S>;
  /** In the write transaction: re-checks what depends on other data and writes `final` (POST's output); `loaded` is what load returned. */
  commit(tx: StoreTransaction, loaded: S, final: S): Promise<void>;
  /** False when commit would write nothing (a login that changed nothing): no write transaction is opened for it. Default: it writes. */
  writes?(loaded: S, final: S): boolean;
  /** For a step alone in its request with one subject: the subject's version as load read it, with the object (a login: one row read), so the engine reads none before the load. */
  loadedVersion?(): number | undefined;
}

/** How long a whole request may take from its arrival: each plugin call gets at most the time left, and no stage starts after it. */
export const REQUEST_DEADLINE_MS = 30_000;

/** One step after its hooks: what commit needs. */
interface Prepared {
  step: LifecycleStep<Subject>;
  loaded: Subject;
  final: Subject;
  event: boolean;
}

const lockKey = (s: SubjectRef) => `${s.kind}:${s.key}`;

function describe(s: SubjectRef): string {
  return `${s.kind} "${s.key}"`;
}

export class LifecycleEngine {
  /** Requests on the same subject run one at a time, hooks included. */
  readonly locks = new SubjectLocks();

  constructor(
    private readonly store: Store,
    private dispatcher: HookDispatcher,
    /** Told after a commit that wrote events (the outbox's delivery wakes up at once). */
    private readonly onEvents: () => void = () => {},
  ) {}

  /** Swaps the plugin set; requests already running keep the set they started with. */
  setDispatcher(dispatcher: HookDispatcher): void {
    this.dispatcher = dispatcher;
  }

  /** Runs one operation through every stage and returns the object as committed (its `secret` always ''). */
  run<S extends Subject>(step: LifecycleStep<S>, info: RequestInfo): Promise<S> {
    return this.runAll([step], info) as Promise<S>;
  }

  /**
   * Runs several operations as one request: one set of locks, one state bag, each step's load
   * seeing the step before it (e.g. EntityCreate then SecretChange for a create with a secret),
   * all committed in one transaction. Returns the last step's object.
   */
  async runAll(steps: readonly LifecycleStep<Subject>[], info: RequestInfo): Promise<Subject> {
    const first = steps[0];
    if (!first) throw new Error('LifecycleEngine.runAll needs at least one step');
    const dispatcher = this.dispatcher;
    const deadline = (info.arrivedAt ?? Date.now()) + REQUEST_DEADLINE_MS;
    for (const step of steps) {
      // The types keep it so; this keeps a cast or a stored name from sending a plugin one the SDK refuses.
      const problem = operationProblem(step.operation, step.point);
      if (problem) throw new Error(`lifecycle step at ${step.point}: ${problem}`);
    }
    const context = hookContext(info, first.operation, deadline);
    const subjects = steps.flatMap((s) => s.subjects);
    const release = dispatcher.lease?.();
    let unlock: (() => void) | undefined;
    try {
      try {
        unlock = await this.locks.acquire(subjects.map(lockKey), deadline);
      } catch (err) {
        throw err instanceof LockWaitExpired
          ? pastDeadline(`while it waited for other requests on ${err.key.replace(':', ' ')}`, { subject: err.key })
          : err;
      }
      // Read before the loads (or by the one load, in its snapshot): a write between the two makes the commit refuse, never pass unseen.
      const ownVersion = steps.length === 1 && subjects.length === 1 ? first.loadedVersion : undefined;
      const versions = ownVersion ? [] : await Promise.all(subjects.map((s) => this.store.reader.version(s)));
      const prepared: Prepared[] = [];
      let previous: Subject | undefined;
      for (const step of steps) {
        checkDeadline(deadline, 'before its hooks');
        context.operation = step.operation;
        const loaded = await step.load(this.store.reader, previous, dispatcher);
        const pre = await runHooks(dispatcher, hookName('pre', step.point), loaded, step.request, context);
        const changed = await step.change(this.store.reader, pre);
        // POST hooks of an update see the object as it was loaded (committed events' `before` too). The
        // context stays one object for the whole request: shadow plugins' own state is kept by it.
        if (pointChange(step.point) === 'update') context.before = loaded;
        const final = await runHooks(dispatcher, hookName('post', step.point), changed, step.request, context);
        delete context.before;
        prepared.push({ step, loaded, final, event: wantsEvent(dispatcher, step.point) });
        previous = final;
      }
      if (prepared.some((p) => p.event || p.step.writes?.(p.loaded, p.final) !== false)) {
        checkDeadline(deadline, 'before its commit');
        await this.commit(prepared, subjects, ownVersion ? [ownVersion()] : versions, info);
      }
      return previous!;
    } finally {
      unlock?.();
      release?.();
    }
  }

  /** The short write transaction: the subjects are as they were read, each step re-checks and writes, then its event. */
  private async commit(
    prepared: readonly Prepared[],
    subjects: readonly SubjectRef[],
    versions: readonly (number | undefined)[],
    info: RequestInfo,
  ): Promise<void> {
    await this.store.write(async (tx) => {
      for (const [i, subject] of subjects.entries()) {
        const now = await tx.version(subject);
        // A subject that did not exist is created by this request: its insert reports one made meanwhile (KH_ERR_ENTITY_EXISTS, …).
        if (versions[i] !== undefined && now !== versions[i]) {
          throw new KeyholdError(
            'KH_ERR_CONFLICT',
            `${describe(subject)} was ${now === undefined ? 'deleted' : 'changed'} by another request while this one ran its hooks; nothing was written; retry`,
            { ...subject },
          );
        }
      }
      for (const p of prepared) {
        await p.step.commit(tx, p.loaded, p.final);
        if (p.event) await appendEvent(tx, p.step, p.loaded, info);
      }
    });
    if (prepared.some((p) => p.event)) this.onEvents();
  }
}

/** runHook, skipped when no plugin implements `hook` (most logins): no promise, no call. */
function runHooks<S extends Subject>(
  dispatcher: HookDispatcher,
  hook: HookName,
  subject: S,
  request: JsonObject,
  context: HookContext,
): S | Promise<S> {
  return dispatcher.handlersFor(hook).length === 0 ? subject : runHook(dispatcher, hook, subject, request, context);
}

/** KH_ERR_REQUEST_DEADLINE: the request ran out of time where no plugin was at fault, so it names none. */
function pastDeadline(where: string, details?: Record<string, unknown>): KeyholdError {
  return new KeyholdError(
    'KH_ERR_REQUEST_DEADLINE',
    `the request reached its deadline (${REQUEST_DEADLINE_MS} ms after it arrived) ${where}; nothing was written; retry later`,
    details,
  );
}

function checkDeadline(deadline: number, where: string): void {
  if (Date.now() >= deadline) throw pastDeadline(where);
}

/** Appends the step's event: the object before it and as written (read back: exactly what was saved), where the request came from, never a secret. */
async function appendEvent(tx: StoreTransaction, step: LifecycleStep<Subject>, loaded: Subject, info: RequestInfo): Promise<void> {
  const subjectKind = 'id' in loaded ? 'entity' : 'group';
  const subjectKey = 'id' in loaded ? loaded.id : loaded.name;
  const after = subjectKind === 'entity' ? await tx.getEntity(subjectKey) : await tx.getGroup(subjectKey);
  const { secret: _secret, ...request } = step.request;
  await tx.outbox.append({
    point: step.point,
    operation: step.operation,
    subjectKind,
    subjectKey,
    before: pointChange(step.point) === 'create' ? null : loaded,
    after: after ?? null,
    request,
    requestId: info.requestId,
    caller: info.caller,
    ...provenance(info),
    at: new Date().toISOString(),
  });
}
