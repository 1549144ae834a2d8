// An in-process committed-event subscriber for the outbox tests: records every delivery attempt,
// behaves as the test says (take it, fail, be down), and lets a test wait for deliveries.
import { COMMITTED_HOOK_NAMES, type CommittedEvent, type CommittedHookName, type CommittedParams } from 'keyhold-plugin-sdk';
import type { EventSubscriber } from '../../src/lifecycle/dispatcher.js';

export class TestSubscriber implements EventSubscriber {
  readonly hooks: ReadonlySet<CommittedHookName>;
  /** Every attempt, in order (a deep copy, as the wire would make). */
  readonly attempts: CommittedParams[] = [];
  /** The events taken (the behaviour returned). */
  readonly delivered: CommittedEvent[] = [];
  /** Runs at each attempt: throw to fail it. */
  behaviour: (params: CommittedParams) => void | Promise<void> = () => {};
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly plugin: string,
    hooks: readonly CommittedHookName[] = COMMITTED_HOOK_NAMES,
  ) {
    this.hooks = new Set(hooks);
  }

  async deliver(params: CommittedParams): Promise<void> {
    const copy = structuredClone(params);
    this.attempts.push(copy);
    try {
      await this.behaviour(copy);
      this.delivered.push(copy.event);
    } finally {
      for (const wake of this.waiters) wake();
    }
  }

  /** Resolves once `done()` is true after some attempt, failing after `timeoutMs`. */
  until(what: string, done: () => boolean, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!done()) return;
        finish();
        resolve();
      };
      const timer = setTimeout(() => {
        finish();
        reject(
          new Error(
            `${this.plugin}: ${what}: not within ${timeoutMs} ms; attempts: ${this.attempts.map((a) => `${a.event.seq}#${a.attempt}`).join(' ')}`,
          ),
        );
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Resolves once `count` events were taken. */
  untilDelivered(count: number): Promise<void> {
    return this.until(`${count} events delivered`, () => this.delivered.length >= count);
  }
}
