// The delivery loop of one plugin: reads the committed events after its cursor in seq (commit)
// order and hands each event of a point it subscribed to over, one at a time, so its events
// arrive in commit order (per subject, too). A failed delivery is retried with backoff; after
// maxAttempts the event becomes a dead letter and the loop goes on. A plugin that is down pauses
// the loop without using up attempts. The cursor is kept in memory and written to the store at
// most every CURSOR_FLUSH_MS (and at stop): after a crash a few events may come again, never fewer.
// Several servers on one database: the loop delivers only while this server holds the plugin's
// delivery lease (lease.ts). Without it, it writes its cursor and waits; once it takes the lease
// (over from a server that stopped or died), it resumes from the cursor in the store. An event in
// flight when the lease is lost may be delivered again by the next holder (at least once).
import { committedHookName, type CommittedEvent, type CommittedHookName } from 'keyhold-plugin-sdk';
import type { Logger } from 'pino';
import { PluginCallError, type EventSubscriber } from '../lifecycle/dispatcher.js';
import type { Store } from '../store/store.js';
import { DeliveryLease } from './lease.js';
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
  /** This server process's delivery lease owner id. */
  owner: string;
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
  /** Whether this server holds the plugin's delivery lease (delivers its events) now. */
  leaseHeld: boolean;
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
  private readonly lease: DeliveryLease;

  constructor(
    readonly subscriber: EventSubscriber,
    cursor: number,
    private readonly deps: WorkerDeps,
  ) {
    this.cursor = this.persisted = cursor;
    this.log = deps.logger.child({ plugin: subscriber.plugin });
    this.lease = new DeliveryLease(subscriber.plugin, deps.owner, deps.store, deps.settings, this.log, () => {
      // Out of any sleep: the loop sees the lease gone and stops delivering.
      this.news.notify();
      this.recovery.notify();
    });
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
      leaseHeld: this.lease.holds(),
    };
  }

  /** Stops after the delivery in flight, writes the cursor and gives the delivery lease up; resolves once done. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.news.notify();
    this.recovery.notify();
    await this.running;
    clearTimeout(this.flushTimer);
    await this.flush();
    await this.lease.stop();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        if (!this.lease.holds(CURSOR_FLUSH_MS)) {
          await this.takeOver();
          continue;
        }
        const batch = await this.deps.store.outbox.eventsAfter(this.cursor, BATCH);
        if (batch.length === 0) {
          await this.news.sleep(IDLE_MS);
          continue;
        }
        for (const event of batch) {
          // With time to spare to write the cursor before the lease could pass to another server.
          if (!this.lease.holds(CURSOR_FLUSH_MS)) break;
          if (this.subscriber.hooks.has(committedHookName(event.point)) && !(await this.handOver(event))) break;
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

  /** Without the lease: writes the cursor, waits for the lease, then resumes from the cursor in the store (another server may have moved it). */
  private async takeOver(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    await this.flush();
    await this.lease.whenHeld(CURSOR_FLUSH_MS);
    if (this.stopped) return;
    const stored = (await this.deps.store.outbox.cursors()).get(this.subscriber.plugin) ?? 0;
    if (stored > this.cursor) this.cursor = this.persisted = stored;
  }

  /** Delivers `event` until the plugin takes it or it is dead-lettered (true), or the loop stops or the lease is lost (false). */
  private async handOver(event: CommittedEvent): Promise<boolean> {
    const { plugin } = this.subscriber;
    const { maxAttempts, retryInitialDelayMs, retryMaxDelayMs } = this.deps.settings;
    let down = 0;
    this.failures = 0;
    while (!this.stopped && this.lease.holds(CURSOR_FLUSH_MS)) {
      try {
        await this.subscriber.deliver({ hook: committedHookName(event.point), event, attempt: this.failures + 1 });
        this.deps.metrics.delivered(plugin, Date.parse(event.at));
        this.failures = 0;
        this.lastError = null;
        return true;
      } catch (err) {
        const failure =
          err instanceof PluginCallError ? err : new PluginCallError('crash', err instanceof Error ? err.message : String(err));
        if (this.stopped || !this.lease.holds(CURSOR_FLUSH_MS)) return false;
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
