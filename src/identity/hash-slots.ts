// A bound on concurrent argon2 work. Each hash or verification takes ~30 ms of a core and runs on
// libuv's thread pool; unbounded, a flood of logins fills every core and starves the event loop
// (every other request, admin writes included). At most `concurrency` run at once, at most
// `queue` wait for a slot, and beyond that a request is refused at once with 503 KH_ERR_BUSY,
// which says nothing about the account it was for.
import { availableParallelism } from 'node:os';
import { Counter, Gauge, type Registry } from 'prom-client';
import { KeyholdError } from '../errors.js';

export interface HashSlotSettings {
  /** Hashes and verifications running at once. */
  concurrency: number;
  /** Further ones waiting for a slot; more are refused with KH_ERR_BUSY. */
  queue: number;
}

/** One core left for the event loop (at least one slot), and about two seconds of waiting at the default cost. */
export const DEFAULT_HASH_SLOTS: Readonly<HashSlotSettings> = Object.freeze({
  concurrency: Math.max(1, availableParallelism() - 1),
  queue: 64,
});

/** What a client refused with KH_ERR_BUSY is told to wait, in seconds (also sent as Retry-After). */
export const BUSY_RETRY_AFTER_SECONDS = 1;

export type HashOperation = 'hash' | 'verify';

export class HashSlots {
  private running = 0;
  /** Wakes the next waiter, handing it the slot of a task that finished. */
  private readonly waiting: (() => void)[] = [];
  private readonly runs?: Counter<'operation'>;
  private readonly refusals?: Counter;

  constructor(
    private readonly settings: HashSlotSettings = DEFAULT_HASH_SLOTS,
    registry?: Registry,
  ) {
    if (!registry) return;
    const registers = [registry];
    this.runs = new Counter({
      name: 'keyhold_secret_hashing_total',
      help: 'argon2 hashes and verifications run',
      labelNames: ['operation'],
      registers,
    });
    this.refusals = new Counter({
      name: 'keyhold_secret_hashing_refused_total',
      help: 'Requests refused with KH_ERR_BUSY because the argon2 queue was full',
      registers,
    });
    const slots = this;
    new Gauge({
      name: 'keyhold_secret_hashing_running',
      help: 'argon2 hashes and verifications running now',
      registers,
      collect() {
        this.set(slots.running);
      },
    });
    new Gauge({
      name: 'keyhold_secret_hashing_waiting',
      help: 'argon2 hashes and verifications waiting for a slot',
      registers,
      collect() {
        this.set(slots.waiting.length);
      },
    });
  }

  /** Runs `task` in a slot, waiting for one if needed; rejects with KH_ERR_BUSY when the queue is full. */
  async run<T>(operation: HashOperation, task: () => Promise<T>): Promise<T> {
    if (this.running < this.settings.concurrency) {
      this.running++;
    } else {
      if (this.waiting.length >= this.settings.queue) {
        this.refusals?.inc();
        throw new KeyholdError(
          'KH_ERR_BUSY',
          `the server is checking too many secrets at once (${this.waiting.length} waiting); retry in ${BUSY_RETRY_AFTER_SECONDS} s`,
          { retryAfterSeconds: BUSY_RETRY_AFTER_SECONDS },
        );
      }
      await new Promise<void>((wake) => this.waiting.push(wake));
    }
    try {
      this.runs?.inc({ operation });
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
