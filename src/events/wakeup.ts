// A wake-up a delivery loop sleeps on: it sleeps until notified or until its timer runs out. A
// notification that comes while nobody sleeps is kept, so a commit made between a loop's read
// and its sleep is never missed.
export class Wakeup {
  private pending = false;
  private wake: (() => void) | undefined;

  notify(): void {
    this.pending = true;
    this.wake?.();
  }

  /** Resolves at the next notification (at once if one is pending) or after `ms`. */
  sleep(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        this.pending = false;
        resolve();
      };
      // Unref'd: a sleeping delivery loop alone does not keep the process alive.
      const timer = setTimeout(done, ms).unref();
      this.wake = done;
    });
  }
}
