// Per-subject locks: requests on the same entity or group run one after another (load, hooks and
// commit), requests on different subjects run their hooks at the same time. A request takes all
// its keys in sorted order, so two requests touching the same two subjects cannot deadlock. An
// entry lives only while someone holds or waits for its key, so memory stays bounded.

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
  /** Per key, the promise that settles when its last holder or waiter has let go. */
  private readonly tails = new Map<string, Promise<void>>();

  /** Keys currently held or waited for (for tests: it returns to 0 when every request is done). */
  get size(): number {
    return this.tails.size;
  }

  /**
   * Takes every key of `keys` (duplicates allowed), in sorted order; rejects with LockWaitExpired,
   * holding none, when one is not free by `deadline` (epoch ms).
   */
  async acquire(keys: readonly string[], deadline: number): Promise<Unlock> {
    const held: Unlock[] = [];
    const unlockAll: Unlock = () => held.splice(0).forEach((unlock) => unlock());
    try {
      for (const key of [...new Set(keys)].sort()) held.push(await this.lockOne(key, deadline));
    } catch (err) {
      unlockAll();
      throw err;
    }
    return unlockAll;
  }

  private async lockOne(key: string, deadline: number): Promise<Unlock> {
    const held = this.tails.get(key);
    const previous = held ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    // Whoever comes next waits for the holder before this one too, even if this one gives up waiting.
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    // A free key is taken at once: no timer (most requests, logins above all).
    if (held === undefined) return release;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        previous,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new LockWaitExpired(key)), Math.max(0, deadline - Date.now()));
        }),
      ]);
    } catch (err) {
      release();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    return release;
  }
}
