// The delivery loop of one plugin: reads the committed events after its cursor in seq (commit)
// order and hands each event of a point it subscribed to over, one at a time, so its events
// arrive in commit order (per subject, too). A failed delivery is retried with backoff; after
// maxAttempts the event becomes a dead letter and the loop goes on. A plugin that is down pauses
// the loop without using up attempts. The cursor is kept in memory and written to the store at
// most every CURSOR_FLUSH_MS (and at stop): after a crash a few events may come again, never fewer.
import { committedHookName, type CommittedEvent, type CommittedHookName } from 'keyhold-plugin-sdk';
import type { Logger } from 'pino';
import { PluginCallError, type EventSubscriber } from '../lifecycle/dispatcher.js';
import type { Store } from '../store/store.js';
import type { OutboxMetrics } from './metrics.js';
import type { OutboxSettings } from './settings.js';
import { Wakeup } from './wakeup.js';

/** Events read per query. */
const BATCH = 100;
/** How long an idle loop sleeps when no commit wakes it (a safety net: commits wake it at once). */
const IDLE_MS = 5000;
/** The longest a delivered event's cursor stays unwritten. */
const CURSOR_FLUSH_MS = 250;

export interface WorkerDeps {
  store: Store;
  settings: OutboxSettings;
  logger: Logger;
  metrics: OutboxMetrics;
}

/** What the loop is doing, for status and the API. */
export interface WorkerState {
  plugin: string;
  hooks: CommittedHookName[];
  /** The last seq handed over (delivered, dead-lettered, or not of its points). */
  cursor: number;
  /** Failed attempts at the event it is on now (0 when none failed). */
  failures: number;
  lastError: string | null;
}

export class DeliveryWorker {
  private cursor: number;
  private persisted: number;
  private failures = 0;
  private lastError: string | null = null;
  private stopped = false;
  /** Commits and stop. */
  private readonly news = new Wakeup();
  /** The plugin became ready again, and stop: what ends a backoff early. */
  private readonly recovery = new Wakeup();
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private readonly running: Promise<void>;
  private readonly log: Logger;

  constructor(
    readonly subscriber: EventSubscriber,
    cursor: number,
    private readonly deps: WorkerDeps,
  ) {
    this.cursor = this.persisted = cursor;
    this.log = deps.logger.child({ plugin: subscriber.plugin });
    this.running = this.loop();
  }

  /** New events were committed. */
  wake(): void {
    this.news.notify();
  }

  /** The plugin is ready again (restarted): a paused or backing-off delivery tries at once. */
  pluginReady(): void {
    this.recovery.notify();
  }

  state(): WorkerState {
    return {
      plugin: this.subscriber.plugin,
      hooks: [...this.subscriber.hooks],
      cursor: this.cursor,
      failures: this.failures,
      lastError: this.lastError,
    };
  }

  /** Stops after the delivery in flight and writes the cursor; resolves once it is written. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.news.notify();
    this.recovery.notify();
    await this.running;
    clearTimeout(this.flushTimer);
    await this.flush();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        const batch = await this.deps.store.outbox.eventsAfter(this.cursor, BATCH);
        if (batch.length === 0) {
          await this.news.sleep(IDLE_MS);
          continue;
        }
        for (const event of batch) {
          if (this.subscriber.hooks.has(committedHookName(event.point)) && !(await this.handOver(event))) return;
          this.advance(event.seq);
        }
      } catch (err) {
        // The store failed (e.g. closing under us): nothing to deliver from; try again later.
        if (this.stopped) return;
        this.log.error(
          { err },
          `committed-event delivery to plugin "${this.subscriber.plugin}" stopped on a store error; trying again in ${IDLE_MS} ms`,
        );
        await this.recovery.sleep(IDLE_MS);
      }
    }
  }

  /** Delivers `event` until the plugin takes it or it is dead-lettered (true), or the loop stops (false). */
  private async handOver(event: CommittedEvent): Promise<boolean> {
    const { plugin } = this.subscriber;
    const { maxAttempts, retryInitialDelayMs, retryMaxDelayMs } = this.deps.settings;
    let down = 0;
    this.failures = 0;
    while (!this.stopped) {
      try {
        await this.subscriber.deliver({ hook: committedHookName(event.point), event, attempt: this.failures + 1 });
        this.deps.metrics.delivered(plugin, Date.parse(event.at));
        this.failures = 0;
        this.lastError = null;
        return true;
      } catch (err) {
        const failure =
          err instanceof PluginCallError ? err : new PluginCallError('crash', err instanceof Error ? err.message : String(err));
        if (this.stopped) return false;
        if (failure.kind === 'unavailable') {
          // Down (restarting or failed until a reload): not the event's fault, so no attempt is used.
          const wait = Math.min(retryInitialDelayMs * 2 ** down++, retryMaxDelayMs);
          this.log.debug({ seq: event.seq, reason: failure.message, retryInMs: wait }, 'plugin down: committed-event delivery paused');
          await this.recovery.sleep(wait);
          continue;
        }
        this.failures++;
        this.lastError = failure.message;
        this.deps.metrics.failed(plugin);
        if (this.failures >= maxAttempts) {
          await this.deadLetter(event, failure.message);
          return true;
        }
        const wait = Math.min(retryInitialDelayMs * 2 ** (this.failures - 1), retryMaxDelayMs);
        this.log.warn(
          { seq: event.seq, attempt: this.failures, maxAttempts, retryInMs: wait, reason: failure.message },
          `plugin "${plugin}" failed to take committed event ${event.seq} (${event.point}); retrying in ${wait} ms`,
        );
        await this.recovery.sleep(wait);
      }
    }
    return false;
  }

  private async deadLetter(event: CommittedEvent, reason: string): Promise<void> {
    const { plugin } = this.subscriber;
    const letter = { plugin, seq: event.seq, attempts: this.failures, lastError: reason, failedAt: new Date().toISOString() };
    await this.deps.store.write(async (tx) => {
      await tx.outbox.addDeadLetter(letter);
      await tx.outbox.setCursor(plugin, event.seq);
    });
    this.persisted = Math.max(this.persisted, event.seq);
    this.failures = 0;
    this.log.error(
      { seq: event.seq, attempts: letter.attempts, reason },
      `plugin "${plugin}" failed to take committed event ${event.seq} (${event.point} of ${event.subjectKind} "${event.subjectKey}") ${letter.attempts} times: it is now a dead letter; see keyhold events list --dead`,
    );
  }

  private advance(seq: number): void {
    this.cursor = seq;
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, CURSOR_FLUSH_MS).unref();
  }

  /** Writes the cursor if it moved; one write at a time. */
  private flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      const seq = this.cursor;
      if (seq <= this.persisted) return;
      try {
        await this.deps.store.write((tx) => tx.outbox.setCursor(this.subscriber.plugin, seq));
        this.persisted = seq;
      } catch (err) {
        // Kept in memory: the next flush writes it; at worst a restart delivers these events again.
        this.log.warn({ err, seq }, 'could not write the committed-event cursor');
      }
    });
    return this.flushing;
  }
}
