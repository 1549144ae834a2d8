// Per-subject locks: requests on the same entity or group run one after another (load, hooks and
// commit), requests on different subjects run their hooks at the same time. A request takes all
// its keys in sorted order, so two requests touching the same two subjects cannot deadlock. An
// entry lives only while someone holds or waits for its key, so memory stays bounded. Taking a
// free key allocates no promise and no timer: every login takes one.

/** Frees the keys taken by acquire (at most once: later calls do nothing). */
export type Unlock = () => void;

/** Thrown by acquire when a key was not free before the deadline. */
export class LockWaitExpired extends Error {
  constructor(readonly key: string) {
    super(`waited for "${key}" until the request's deadline`);
    this.name = 'LockWaitExpired';
  }
}

export class SubjectLocks {
  /** Per held key, who waits for it in arrival order; the holder hands the key to the first of them. */
  private readonly waiting = new Map<string, (() => void)[]>();

  /** Keys currently held or waited for (for tests: it returns to 0 when every request is done). */
  get size(): number {
    return this.waiting.size;
  }

  /**
   * Takes every key of `keys` (duplicates allowed), in sorted order; rejects with LockWaitExpired,
   * holding none, when one is not free by `deadline` (epoch ms).
   */
  async acquire(keys: readonly string[], deadline: number): Promise<Unlock> {
    const held: string[] = [];
    const unlockAll: Unlock = () => held.splice(0).forEach((key) => this.release(key));
    try {
      for (const key of keys.length === 1 ? keys : [...new Set(keys)].sort()) {
        const wait = this.take(key, deadline);
        if (wait) await wait;
        held.push(key);
      }
    } catch (err) {
      unlockAll();
      throw err;
    }
    return unlockAll;
  }

  /** Takes `key` at once when it is free (undefined), else a promise that settles when it is handed over, or rejects at the deadline. */
  private take(key: string, deadline: number): Promise<void> | undefined {
    const queue = this.waiting.get(key);
    if (!queue) {
      this.waiting.set(key, []);
      return undefined;
    }
    return new Promise<void>((resolve, reject) => {
      const handOver = () => {
        clearTimeout(timer);
        resolve();
      };
      // Giving up leaves the queue: whoever came after it is next.
      const timer = setTimeout(
        () => {
          queue.splice(queue.indexOf(handOver), 1);
          reject(new LockWaitExpired(key));
        },
        Math.max(0, deadline - Date.now()),
      );
      queue.push(handOver);
    });
  }

  /** Hands `key` to its first waiter, or frees it when nobody waits. */
  private release(key: string): void {
    const queue = this.waiting.get(key);
    const next = queue?.shift();
    if (next) next();
    else this.waiting.delete(key);
  }
}
