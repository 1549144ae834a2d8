// The committed stage's delivery side: one DeliveryWorker per plugin with committed hooks, rebuilt
// when the plugin set changes (cursors kept by plugin name, in the store, so delivery resumes after
// a reload or a restart); what an operator does with dead letters (retry, skip); what is waiting
// (status, metrics); and retention of delivered events.
import { COMMITTED_HOOKS, committedHookName, type CommittedEvent, type CommittedHookName, type LifecyclePoint } from 'keyhold-plugin-sdk';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { KeyholdError } from '../errors.js';
import { PluginCallError, type EventSubscriber } from '../lifecycle/dispatcher.js';
import type { DeadLetter } from '../store/outbox.js';
import type { Store } from '../store/store.js';
import { processOwnerId } from './lease.js';
import { OutboxMetrics } from './metrics.js';
import type { OutboxSettings } from './settings.js';
import { DeliveryWorker, type WorkerState } from './worker.js';

/** How often delivered events older than the retention are deleted. */
const PRUNE_INTERVAL_MS = 60_000;

export interface OutboxDeps {
  store: Store;
  settings: OutboxSettings;
  logger: Logger;
  /** Where the outbox metrics are registered. */
  registry: Registry;
  /** This server's delivery lease owner id; by default one unique to the process (lease.ts). */
  owner?: string;
}

/** One subscribed plugin's delivery, as `keyhold events list` and the metrics show it. */
export interface SubscriberStatus extends WorkerState {
  /** Events of its points after its cursor. */
  pending: number;
  /** Age of the oldest of them, 0 when it is caught up. */
  lagSeconds: number;
  deadLetters: number;
  /** The server process holding the plugin's delivery lease (the one delivering), or null when no unexpired lease is recorded. */
  leaseOwner: string | null;
}

/** An event as the API shows it: with its dead letters, and the plugins still to get it. */
export interface EventView extends CommittedEvent {
  deadLetters: DeadLetter[];
  /** Subscribed plugins (of its point) whose cursor has not reached it yet. */
  pendingFor: string[];
}

export interface ListQuery {
  /** Events after this seq (default 0). */
  after?: number;
  /** At most this many (default 100). */
  limit?: number;
  /** Only dead letters. */
  dead?: boolean;
  /** Only events at this plugin's committed points, or with `dead`, only its dead letters. */
  plugin?: string;
}

const DEFAULT_LIMIT = 100;
const POINT_OF = new Map(COMMITTED_HOOKS.map((h) => [h.name, h.point]));

function pointsOf(hooks: readonly CommittedHookName[]): LifecyclePoint[] {
  return hooks.map((h) => POINT_OF.get(h)!);
}

function notFound(seq: number): KeyholdError {
  return new KeyholdError('KH_ERR_EVENT_NOT_FOUND', `no event ${seq}: it never existed or was deleted after the retention period`, { seq });
}

export class Outbox {
  readonly metrics: OutboxMetrics;
  /** This server process's delivery lease owner id. */
  readonly owner: string;
  private workers = new Map<string, DeliveryWorker>();
  /** use() and stop() run one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly pruneTimer: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly deps: OutboxDeps) {
    this.owner = deps.owner ?? processOwnerId();
    this.metrics = new OutboxMetrics(deps.registry, () => this.status());
    this.pruneTimer = setInterval(() => void this.pruneQuietly(), PRUNE_INTERVAL_MS).unref();
  }

  /**
   * Delivers to `subscribers` from now on (a new plugin set). Call it when the set is swapped, before
   * any request runs on the new set: a plugin not seen before starts at the last event committed so
   * far (no replay of history), and the cursors of plugins no longer loaded are dropped.
   */
  use(subscribers: readonly EventSubscriber[]): Promise<void> {
    if (this.stopped) return Promise.resolve();
    // Queued in the store now, so it runs before any transaction of a request on the new set.
    const kept = this.deps.store.write((tx) => tx.outbox.keepCursors(subscribers.map((s) => s.plugin)));
    // Awaited (and its failure logged) below, after the old loops stopped; not an unhandled rejection meanwhile.
    kept.catch(() => undefined);
    return this.serialised(async () => {
      await this.stopWorkers();
      try {
        await kept;
        if (this.stopped) return;
        const cursors = await this.deps.store.outbox.cursors();
        for (const subscriber of subscribers)
          this.workers.set(
            subscriber.plugin,
            new DeliveryWorker(subscriber, cursors.get(subscriber.plugin) ?? 0, { ...this.deps, metrics: this.metrics, owner: this.owner }),
          );
      } catch (err) {
        // Their events stay in the outbox: the next plugin set (a reload) or a restart delivers them.
        this.deps.logger.error(
          { err, plugins: subscribers.map((s) => s.plugin) },
          'committed-event delivery could not start: the store failed',
        );
      }
    });
  }

  /** Events were committed: every loop reads them at once. */
  wake(): void {
    for (const worker of this.workers.values()) worker.wake();
  }

  /** Plugin `name` is ready again after a restart: its paused delivery goes on at once. */
  pluginReady(name: string): void {
    this.workers.get(name)?.pluginReady();
  }

  async status(): Promise<SubscriberStatus[]> {
    const now = Date.now();
    const leases = new Map((await this.deps.store.leases.all()).filter((l) => l.expiresAt > now).map((l) => [l.plugin, l.owner]));
    return Promise.all(
      (await this.states()).map(async (state) => {
        const backlog = await this.deps.store.outbox.backlog(state.cursor, pointsOf(state.hooks));
        const deadLetters = (await this.deps.store.outbox.deadLetters({ plugin: state.plugin })).length;
        return {
          ...state,
          pending: backlog.count,
          lagSeconds: backlog.oldestAt === null ? 0 : Math.max(0, now - backlog.oldestAt) / 1000,
          deadLetters,
          leaseOwner: leases.get(state.plugin) ?? null,
        };
      }),
    );
  }

  /** Events in seq order with the delivery status of every subscribed plugin (pending, lag, dead letters). */
  async list(query: ListQuery = {}): Promise<{ events: EventView[]; subscribers: SubscriberStatus[] }> {
    const after = query.after ?? 0;
    const limit = query.limit ?? DEFAULT_LIMIT;
    let events: CommittedEvent[];
    if (query.dead) {
      const seqs = [
        ...new Set(
          (await this.deps.store.outbox.deadLetters(query.plugin === undefined ? {} : { plugin: query.plugin })).map((l) => l.seq),
        ),
      ]
        .filter((seq) => seq > after)
        .slice(0, limit);
      events = (await Promise.all(seqs.map((seq) => this.deps.store.outbox.event(seq)))).filter((e) => e !== undefined);
    } else {
      events = await this.deps.store.outbox.eventsAfter(after, limit, query.plugin === undefined ? undefined : this.pointsOf(query.plugin));
    }
    const states = await this.states();
    return { events: await Promise.all(events.map((e) => this.view(e, states))), subscribers: await this.status() };
  }

  async show(seq: number): Promise<EventView> {
    const event = await this.deps.store.outbox.event(seq);
    if (!event) throw notFound(seq);
    return this.view(event, await this.states());
  }

  /** Delivers dead letter `seq` of `plugin` (which may be left out when only one plugin has it) once more, now. */
  async retry(seq: number, plugin?: string): Promise<DeadLetter> {
    const { letter, event } = await this.deadLetter(seq, plugin);
    const hook = committedHookName(event.point);
    const subscriber = this.workers.get(letter.plugin)?.subscriber;
    if (!subscriber?.hooks.has(hook)) {
      throw new KeyholdError(
        'KH_ERR_PLUGIN_UNAVAILABLE',
        `plugin "${letter.plugin}" is not loaded or no longer implements ${hook}: load it again, or skip the event`,
        { plugin: letter.plugin },
      );
    }
    try {
      await subscriber.deliver({ hook, event, attempt: letter.attempts + 1 });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      const kept = { ...letter, attempts: letter.attempts + 1, lastError: reason, failedAt: new Date().toISOString() };
      if (!(err instanceof PluginCallError && err.kind === 'unavailable')) this.metrics.failed(letter.plugin);
      await this.deps.store.write((tx) => tx.outbox.addDeadLetter(kept));
      throw new KeyholdError(
        'KH_ERR_EVENT_DELIVERY_FAILED',
        `plugin "${letter.plugin}" failed to take event ${seq} again: ${reason}; it stays a dead letter`,
        { plugin: letter.plugin, seq, reason },
      );
    }
    this.metrics.delivered(letter.plugin, Date.parse(event.at));
    await this.deps.store.write((tx) => tx.outbox.removeDeadLetter(letter.plugin, seq));
    this.deps.logger.info({ plugin: letter.plugin, seq }, `dead letter ${seq} delivered to plugin "${letter.plugin}" on retry`);
    return letter;
  }

  /** Drops dead letter `seq` of `plugin` (which may be left out when only one plugin has it): that plugin never gets the event. */
  async skip(seq: number, plugin?: string): Promise<DeadLetter> {
    const { letter } = await this.deadLetter(seq, plugin);
    await this.deps.store.write((tx) => tx.outbox.removeDeadLetter(letter.plugin, seq));
    this.deps.logger.warn(
      { plugin: letter.plugin, seq },
      `dead letter ${seq} of plugin "${letter.plugin}" skipped by an operator: the plugin will not get it`,
    );
    return letter;
  }

  /** Deletes delivered events committed before `now` minus the retention; returns how many. */
  async prune(now = Date.now()): Promise<number> {
    const deleted = await this.deps.store.write((tx) => tx.outbox.prune(now - this.deps.settings.retentionMs));
    if (deleted > 0) this.deps.logger.debug({ deleted }, 'old committed events deleted');
    return deleted;
  }

  /** Stops every loop after its delivery in flight and writes the cursors. */
  stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.pruneTimer);
    return this.serialised(() => this.stopWorkers());
  }

  private async deadLetter(seq: number, plugin: string | undefined): Promise<{ letter: DeadLetter; event: CommittedEvent }> {
    const event = await this.deps.store.outbox.event(seq);
    if (!event) throw notFound(seq);
    const letters = await this.deps.store.outbox.deadLetters({ seq, ...(plugin !== undefined && { plugin }) });
    if (letters.length === 0)
      throw new KeyholdError(
        'KH_ERR_DEAD_LETTER_NOT_FOUND',
        `event ${seq} is not a dead letter${plugin === undefined ? '' : ` of plugin "${plugin}"`}`,
        { seq },
      );
    if (letters.length > 1) {
      const plugins = letters.map((l) => l.plugin);
      throw new KeyholdError(
        'KH_ERR_INVALID_INPUT',
        `event ${seq} is a dead letter of several plugins (${plugins.join(', ')}): name one with plugin`,
        { seq, plugins },
      );
    }
    return { letter: letters[0]!, event };
  }

  /**
   * The loops' states; the cursor of a plugin another server delivers (this one does not hold its
   * lease) is the one in the store, which that server moves.
   */
  private async states(): Promise<WorkerState[]> {
    const states = [...this.workers.values()].map((w) => w.state());
    if (states.every((s) => s.leaseHeld)) return states;
    const stored = await this.deps.store.outbox.cursors();
    return states.map((s) => (s.leaseHeld ? s : { ...s, cursor: Math.max(s.cursor, stored.get(s.plugin) ?? 0) }));
  }

  private async view(event: CommittedEvent, states: readonly WorkerState[]): Promise<EventView> {
    const hook = committedHookName(event.point);
    const pendingFor = states.filter((s) => s.hooks.includes(hook) && s.cursor < event.seq).map((s) => s.plugin);
    return { ...event, deadLetters: await this.deps.store.outbox.deadLetters({ seq: event.seq }), pendingFor };
  }

  /** The points of a subscribed plugin; an unknown name is refused with the names there are. */
  private pointsOf(plugin: string): LifecyclePoint[] {
    const worker = this.workers.get(plugin);
    if (!worker) {
      const loaded = [...this.workers.keys()];
      throw new KeyholdError(
        'KH_ERR_INVALID_INPUT',
        `no loaded plugin "${plugin}" has committed hooks; those that have: ${loaded.join(', ') || 'none'}`,
        { in: 'querystring', problems: [{ path: 'plugin', problem: 'not a subscribed plugin' }] },
      );
    }
    return pointsOf(worker.state().hooks);
  }

  private async stopWorkers(): Promise<void> {
    const old = [...this.workers.values()];
    this.workers = new Map();
    await Promise.all(old.map((w) => w.stop()));
  }

  private async pruneQuietly(): Promise<void> {
    try {
      await this.prune();
    } catch (err) {
      this.deps.logger.warn({ err }, 'could not delete old committed events; trying again later');
    }
  }

  private serialised<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }
}
