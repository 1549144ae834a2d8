// The outbox's part of the store: the committed events, each plugin's delivery cursor and its dead
// letters. Events are appended inside the request's own transaction (so a rolled-back request
// leaves none); the delivery loop reads committed events only and moves the cursors in short
// transactions of its own.
import type { CommittedEvent, LifecyclePoint } from 'keyhold-plugin-sdk';

/** An event as the engine appends it; the store numbers it. */
export type NewEvent = Omit<CommittedEvent, 'seq'>;

/** An event one plugin failed to take `attempts` times in a row: no longer retried until an operator says so. */
export interface DeadLetter {
  plugin: string;
  seq: number;
  attempts: number;
  lastError: string;
  /** When it was dead-lettered, ISO 8601 UTC. */
  failedAt: string;
}

/** What one plugin has not been given yet: events after its cursor at the points it subscribes to. */
export interface Backlog {
  count: number;
  /** Commit time (epoch ms) of the oldest of them, null when there is none. */
  oldestAt: number | null;
}

/** Reads of committed outbox rows. */
export interface OutboxReader {
  /** Events after `seq` in seq (commit) order, at most `limit`; only those at `points` when given. */
  eventsAfter(seq: number, limit: number, points?: readonly LifecyclePoint[]): Promise<CommittedEvent[]>;
  event(seq: number): Promise<CommittedEvent | undefined>;
  /** Each plugin's cursor: the last seq it was given (delivered, dead-lettered or skipped as not its point). */
  cursors(): Promise<Map<string, number>>;
  /** Dead letters in seq order, of one plugin and/or one event when given. */
  deadLetters(filter?: { plugin?: string; seq?: number }): Promise<DeadLetter[]>;
  backlog(after: number, points: readonly LifecyclePoint[]): Promise<Backlog>;
}

/** Writes, inside one store transaction. */
export interface OutboxWriter {
  /** Appends the event; it commits or rolls back with the transaction. Returns its seq. */
  append(event: NewEvent): Promise<number>;
  /** Moves a plugin's cursor forward (never back: a late write of a server that lost the delivery lease cannot undo another's progress); no-op for a plugin keepCursors removed (a late write of a plugin no longer loaded). */
  setCursor(plugin: string, seq: number): Promise<void>;
  /** Keeps the cursors of `plugins` only: one not seen before starts at the last event (no replay of history). */
  keepCursors(plugins: readonly string[]): Promise<void>;
  /** Records (or replaces) a dead letter. The cursor is not moved: the delivery loop moves it in the same transaction. */
  addDeadLetter(letter: DeadLetter): Promise<void>;
  /** Removes one dead letter; false when there was none. */
  removeDeadLetter(plugin: string, seq: number): Promise<boolean>;
  /** Deletes the events committed before `before` (epoch ms) that every cursor has passed and no dead letter holds; returns how many. */
  prune(before: number): Promise<number>;
}

/** Who may deliver a plugin's committed events now. */
export interface DeliveryLease {
  plugin: string;
  /** The server process holding it (unique per process: see src/events/lease.ts). */
  owner: string;
  /** When it lapses unless renewed, epoch ms by the store's clock. */
  expiresAt: number;
}

/**
 * The delivery leases: of all the servers on one database, only the one holding a plugin's lease
 * delivers its committed events, so each event reaches each plugin once. Each method is one short
 * write transaction of its own (a conditional update), never part of a request's transaction.
 * Expiry is judged by the store's clock (a networked store should use the database's own `now()`,
 * so servers with drifting clocks agree).
 */
export interface DeliveryLeaseStore {
  /**
   * Takes `plugin`'s lease for `owner` until `ttlMs` from now when it is free, expired or already
   * `owner`'s (a renewal); returns whether `owner` holds it afterwards.
   */
  acquire(plugin: string, owner: string, ttlMs: number): Promise<boolean>;
  /** Gives the lease up, if `owner` holds it, so another server can take it at once (a clean stop). */
  release(plugin: string, owner: string): Promise<void>;
  /** Every lease recorded, expired ones included, by plugin name. */
  all(): Promise<DeliveryLease[]>;
}
