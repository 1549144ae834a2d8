// One plugin's committed-event delivery lease, as one server process keeps it: of all the servers
// on one database only the lease holder delivers the plugin's events (each event reaches the
// plugin once). The lease is taken and renewed in the store every leaseRenewMs for leaseTtlMs; a
// holder counts itself as holding only while a renewal of its own has not run out, less one
// renewal interval of margin, so it stops delivering before any other server can take the lease
// over (which the store allows once the lease expired). A server that stops cleanly gives the
// lease up at once; one that dies or loses the database is replaced after the lease expires.
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import { Wakeup } from './wakeup.js';

export interface LeaseSettings {
  /** How long a taken or renewed lease lasts. */
  leaseTtlMs: number;
  /** How often the holder renews it (and a server without it tries to take it). */
  leaseRenewMs: number;
}

/** An owner id unique to this server process (host, pid, and a random part for pid reuse). */
export function processOwnerId(): string {
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
}

export class DeliveryLease {
  /** Until when (this process's clock) the last successful take or renewal holds. */
  private heldUntil = 0;
  private readonly taken = new Wakeup();
  private readonly timer: NodeJS.Timeout;
  private renewing: Promise<void> | undefined;
  private stopped = false;

  constructor(
    readonly plugin: string,
    readonly owner: string,
    private readonly store: Pick<Store, 'leases'>,
    private readonly settings: LeaseSettings,
    private readonly log: Logger,
    /** Called when another server turned out to hold the lease this one held. */
    private readonly lost: () => void,
  ) {
    void this.renew();
    this.timer = setInterval(() => void this.renew(), settings.leaseRenewMs).unref();
  }

  /** Whether this process may deliver the plugin's events now, with `marginMs` to spare beyond the renewal margin (e.g. to write the cursor). */
  holds(marginMs = 0): boolean {
    return !this.stopped && Date.now() + this.settings.leaseRenewMs + marginMs < this.heldUntil;
  }

  /** Resolves once holds(marginMs), or the lease stopped. */
  async whenHeld(marginMs = 0): Promise<void> {
    while (!this.stopped && !this.holds(marginMs)) await this.taken.sleep(this.settings.leaseRenewMs);
  }

  /** Stops renewing; gives the lease up when this process holds it, so another server takes over at once. */
  async stop(): Promise<void> {
    const held = this.holds();
    this.stopped = true;
    clearInterval(this.timer);
    this.taken.notify();
    await this.renewing;
    if (!held) return;
    try {
      await this.store.leases.release(this.plugin, this.owner);
    } catch (err) {
      // It expires by itself: another server takes over after leaseTtl.
      this.log.warn({ err }, `could not give up the delivery lease of plugin "${this.plugin}"; it expires by itself`);
    }
  }

  private renew(): Promise<void> {
    if (this.stopped || this.renewing) return this.renewing ?? Promise.resolve();
    this.renewing = (async () => {
      const started = Date.now();
      const had = this.holds();
      try {
        const held = await this.store.leases.acquire(this.plugin, this.owner, this.settings.leaseTtlMs);
        this.heldUntil = held ? started + this.settings.leaseTtlMs : 0;
        if (held && !had) {
          this.log.info(
            { owner: this.owner },
            `this server now delivers the committed events of plugin "${this.plugin}" (delivery lease taken)`,
          );
          this.taken.notify();
        } else if (!held && had) {
          this.log.warn(
            { owner: this.owner },
            `another server took over the delivery of committed events to plugin "${this.plugin}" (delivery lease lost)`,
          );
          this.lost();
        }
      } catch (err) {
        // Kept until it runs out: holds() turns false by itself, before another server can take it.
        this.log.warn({ err }, `could not renew the delivery lease of plugin "${this.plugin}"; trying again`);
      } finally {
        this.renewing = undefined;
      }
    })();
    return this.renewing;
  }
}
