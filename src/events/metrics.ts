// Outbox metrics in the server's prom-client Registry (Prometheus text on /metrics): per plugin,
// what waits (depth, lag, dead letters: read from the outbox at each scrape) and what happened
// (deliveries, failures, commit-to-delivery latency), and whether this server holds each plugin's delivery lease.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** One subscriber's state as the gauges show it. */
export interface DeliveryGauges {
  plugin: string;
  pending: number;
  lagSeconds: number;
  deadLetters: number;
  /** Whether this server holds the plugin's delivery lease. */
  leaseHeld: boolean;
}

export class OutboxMetrics {
  private readonly deliveries: Counter<'plugin'>;
  private readonly failures: Counter<'plugin'>;
  private readonly latency: Histogram<'plugin'>;

  /** `gauges` is read at every scrape, so the gauges always show the plugins currently subscribed. */
  constructor(registry: Registry, gauges: () => Promise<DeliveryGauges[]>) {
    const registers = [registry];
    this.deliveries = new Counter({
      name: 'keyhold_event_deliveries_total',
      help: 'Committed events a plugin took',
      labelNames: ['plugin'],
      registers,
    });
    this.failures = new Counter({
      name: 'keyhold_event_delivery_failures_total',
      help: 'Committed-event deliveries a plugin failed (error, timeout or crash); each is retried, up to maxAttempts',
      labelNames: ['plugin'],
      registers,
    });
    this.latency = new Histogram({
      name: 'keyhold_event_delivery_latency_seconds',
      help: 'Time from the commit of an event to a plugin taking it',
      labelNames: ['plugin'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    const gauge = (name: string, help: string, value: (g: DeliveryGauges) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['plugin'],
        registers,
        async collect() {
          const all = await gauges();
          this.reset();
          for (const g of all) this.set({ plugin: g.plugin }, value(g));
        },
      });
    gauge('keyhold_outbox_depth', 'Committed events not yet handed to the plugin (delivered or dead-lettered)', (g) => g.pending);
    gauge(
      'keyhold_event_delivery_lag_seconds',
      'Age of the oldest committed event not yet handed to the plugin; 0 when it is caught up',
      (g) => g.lagSeconds,
    );
    gauge(
      'keyhold_event_dead_letters',
      'Events the plugin failed to take maxAttempts times, waiting for keyhold events retry or skip',
      (g) => g.deadLetters,
    );
    gauge(
      'keyhold_event_delivery_lease_held',
      "1 when this server holds the plugin's delivery lease (it delivers the plugin's committed events), 0 when another server on the database does",
      (g) => (g.leaseHeld ? 1 : 0),
    );
  }

  delivered(plugin: string, committedAt: number): void {
    this.deliveries.inc({ plugin });
    this.latency.observe({ plugin }, Math.max(0, Date.now() - committedAt) / 1000);
  }

  failed(plugin: string): void {
    this.failures.inc({ plugin });
  }
}
