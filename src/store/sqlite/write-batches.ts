// Group commit for the write queue: writes that queue up while a transaction runs are committed
// together, in one transaction and one fsync, each in its own savepoint so that one write's
// failure undoes only its own changes. Writes still run one after another, in the order they came.
// With hooks outside the write lock, a commit's fsync is what bounds writes; batching lets
// concurrent requests share it.

/** One queued write: its work and how to answer its caller. */
export interface QueuedWrite<Tx> {
  work: (tx: Tx) => Promise<unknown>;
  /** When a wait for another process's lock (counted from the write's arrival) gives up. */
  deadline: number;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/** At most this many writes share one transaction: a failure of the commit itself fails them all. */
export const MAX_BATCH = 32;

export class WriteBatches<Tx> {
  private pending: QueuedWrite<Tx>[] = [];
  /** Settles when the queue is empty and no batch runs. */
  private idle: Promise<void> = Promise.resolve();

  constructor(
    /** Runs one batch in one transaction and answers every write of it. Returns the writes it did not run (they run first in the next batch). */
    private readonly runBatch: (batch: QueuedWrite<Tx>[]) => Promise<QueuedWrite<Tx>[]>,
  ) {}

  /** Writes waiting for their batch or running in it. */
  get size(): number {
    return this.pending.length;
  }

  add<T>(work: (tx: Tx) => Promise<T>, deadline: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ work, deadline, resolve: resolve as (value: unknown) => void, reject });
      if (this.pending.length === 1) this.idle = this.drain();
    });
  }

  /** Resolves once every queued write has been answered. */
  drained(): Promise<void> {
    return this.idle;
  }

  private async drain(): Promise<void> {
    // `pending` keeps the running batch at its head until it is answered, so that add() sees the queue as busy.
    while (this.pending.length > 0) {
      const batch = this.pending.slice(0, MAX_BATCH);
      let left: QueuedWrite<Tx>[] = [];
      try {
        left = await this.runBatch(batch);
      } catch (err) {
        // runBatch answers every write itself; should it fail anyway, no caller is left waiting (a second answer is ignored).
        for (const write of batch) write.reject(err);
      }
      this.pending = [...left, ...this.pending.slice(batch.length)];
    }
  }
}
