// The `events:` settings (parsed in src/config.ts, documented in docs/configuration.md).
import type { LeaseSettings } from './lease.js';

export interface OutboxSettings extends LeaseSettings {
  /** Delivered events older than this are deleted (those some plugin still waits for, or a dead letter holds, are kept). */
  retentionMs: number;
  /** Failed deliveries of one event to one plugin before it becomes a dead letter. */
  maxAttempts: number;
  /** Wait after the first failure; doubles after each next one, up to retryMaxDelayMs. */
  retryInitialDelayMs: number;
  retryMaxDelayMs: number;
}
