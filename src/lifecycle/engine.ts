// The request lifecycle every mutating operation and AuthCheck goes through, in named stages:
//
//   load ─► PRE hooks ─► change (built-in checks + the write) ─► POST hooks ─► save ─► event ─► commit ─► committed
//
// all but the last inside one store transaction, so a failure at any stage writes nothing and
// emits no event. The event (when a plugin subscribed to the point's committed hook) is written
// to the outbox in that same transaction; the outbox delivers it after the commit.
// Plugins never see the secret hash: it is held aside here and put back before saving.
import { hookName, type Capability, type Entity, type HookContext, type JsonObject, type LifecyclePoint } from 'keyhold-plugin-sdk';
import type { Store, StoreTransaction } from '../store/store.js';
import { runHook, type Subject } from './chain.js';
import { wantsEvent, type HookDispatcher } from './dispatcher.js';

/** Who asked, for hook contexts, logs and the authorization rules that depend on the data. */
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
  /**
   * The client's network address, for requests that came over HTTP: the TCP peer, or for forward
   * authentication the address a trusted proxy forwarded. What the login throttle counts, and
   * what hooks see as context.clientAddress.
   */
  clientAddress?: string;
}

/** A request made by the server itself (bootstrap, maintenance): it may do everything. */
export function serverRequest(requestId: string): RequestInfo {
  return { requestId, caller: null, capabilities: ['GLOBAL_ROOT'] };
}

/** One operation, described as the stages the engine runs. */
export interface LifecycleStep<S extends Subject> {
  point: LifecyclePoint;
  /** A stable operation name, e.g. `entity.update-meta`; hooks see it as context.operation. */
  operation: string;
  /** The request data hooks see (for SecretChange the new secret in plain text, never for AuthCheck). */
  request: JsonObject;
  /** Loads the object as it stands (for create: the object as requested). */
  load(tx: StoreTransaction): Promise<S>;
  /** Built-in checks and the change itself, applied to PRE's output; returns the changed object. */
  change(tx: StoreTransaction, subject: S): Promise<S>;
  /** Persists the output of POST hooks; called only when they changed the object (the chain keeps an unchanged one as the same object). */
  save?(tx: StoreTransaction, subject: S): Promise<void>;
}

/** How long a whole request may take before its remaining hook calls are not started. */
export const REQUEST_DEADLINE_MS = 30_000;

function secretOf(subject: Subject): string | undefined {
  return 'secret' in subject ? subject.secret : undefined;
}

function withSecret<S extends Subject>(subject: S, secret: string | undefined): S {
  return secret === undefined ? subject : ({ ...(subject as Entity), secret } as S);
}

/** The object as hooks see it: an entity's secret hash blanked. */
function hookView<S extends Subject>(subject: S): S {
  return withSecret(subject, secretOf(subject) === undefined ? undefined : '');
}

/** The points whose object does not exist before the step: their event's `before` is null. */
const CREATES: ReadonlySet<LifecyclePoint> = new Set(['EntityCreate', 'GroupCreate']);

export class LifecycleEngine {
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

  /** Runs one operation through every stage and returns the object as committed (without its secret hash). */
  run<S extends Subject>(step: LifecycleStep<S>, info: RequestInfo): Promise<S> {
    return this.runAll([step], info) as Promise<S>;
  }

  /**
   * Runs several operations as one request: in one transaction, with one state bag, each step's
   * load seeing the steps before it (e.g. EntityCreate then SecretChange for a create with a secret).
   * Returns the last step's object.
   */
  runAll(steps: readonly LifecycleStep<Subject>[], info: RequestInfo): Promise<Subject> {
    const dispatcher = this.dispatcher;
    const context: HookContext = {
      requestId: info.requestId,
      operation: '',
      caller: info.caller,
      ...(info.clientAddress !== undefined && { clientAddress: info.clientAddress }),
      deadline: Date.now() + REQUEST_DEADLINE_MS,
      state: {},
    };
    const release = dispatcher.lease?.();
    let events = 0;
    const done = this.store
      .write(async (tx) => {
        let last: Subject | undefined;
        for (const step of steps) {
          context.operation = step.operation;
          const loaded = await step.load(tx);
          last = await runStages(dispatcher, tx, step, loaded, context);
          if (wantsEvent(dispatcher, step.point)) {
            await appendEvent(tx, step, loaded, info);
            events++;
          }
        }
        if (!last) throw new Error('LifecycleEngine.runAll needs at least one step');
        return last;
      })
      .then((last) => {
        if (events > 0) this.onEvents();
        return last;
      });
    return release ? done.finally(release) : done;
  }
}

/** Appends the step's event: the object before it and as written (read back: exactly what was saved), never a secret. */
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
    before: CREATES.has(step.point) ? null : hookView(loaded),
    after: after ? hookView(after) : null,
    request,
    requestId: info.requestId,
    caller: info.caller,
    at: new Date().toISOString(),
  });
}

async function runStages<S extends Subject>(dispatcher: HookDispatcher, tx: StoreTransaction, step: LifecycleStep<S>, loaded: S, context: HookContext): Promise<S> {
  const pre = await runHook(dispatcher, hookName('pre', step.point), hookView(loaded), step.request, context);
  const changed = await step.change(tx, withSecret(pre, secretOf(loaded)));
  const secret = secretOf(changed);
  const afterChange = hookView(changed);
  const post = await runHook(dispatcher, hookName('post', step.point), afterChange, step.request, context);
  if (step.save && post !== afterChange) await step.save(tx, withSecret(post, secret));
  return post;
}
