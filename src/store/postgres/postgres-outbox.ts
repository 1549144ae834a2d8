// The outbox tables in PostgreSQL, shared by every server on the database. Seqs come from an
// identity sequence, which hands out numbers at insert time, not at commit: two transactions
// appending at once could commit seq 8 before seq 7, and a reader that saw 8 and moved its cursor
// would never see 7. The store prevents that by serialising every write transaction on one
// transaction-level advisory lock (postgres-store.ts): a transaction takes its seqs only after
// the one before it has committed and released the lock, so seqs become visible in seq order
// and reading "after the cursor" never skips one. (A rolled-back append leaves a gap that nothing
// fills later, which readers need not wait for.)
import type { CommittedEvent, LifecyclePoint } from 'keyhold-plugin-sdk';
import {
  deadLetterFrom,
  EVENT_COLUMNS,
  eventFrom,
  NEW_EVENT_COLUMNS,
  newEventValues,
  type DeadLetterRow,
  type EventRow,
} from '../event-rows.js';
import type { Backlog, DeadLetter, NewEvent, OutboxReader, OutboxWriter } from '../outbox.js';
import type { Query } from './postgres-reader.js';

const INSERT_EVENT = `INSERT INTO events (${NEW_EVENT_COLUMNS.join(', ')}) VALUES (${NEW_EVENT_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')}) RETURNING seq`;

/** `AND point = ANY($n)` for the given points, with its parameter; no condition when `points` is undefined. */
function pointFilter(points: readonly LifecyclePoint[] | undefined, n: number): [string, unknown[]] {
  return points === undefined ? ['', []] : [` AND point = ANY($${n}::text[])`, [points]];
}

export class PostgresOutboxReader implements OutboxReader {
  constructor(private readonly query: Query) {}

  async eventsAfter(seq: number, limit: number, points?: readonly LifecyclePoint[]): Promise<CommittedEvent[]> {
    const [filter, params] = pointFilter(points, 3);
    const rows = await this.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE seq > $1${filter} ORDER BY seq LIMIT $2`, [
      seq,
      limit,
      ...params,
    ]);
    return rows.map(eventFrom);
  }

  async event(seq: number): Promise<CommittedEvent | undefined> {
    const [row] = await this.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE seq = $1`, [seq]);
    return row && eventFrom(row);
  }

  async cursors(): Promise<Map<string, number>> {
    const rows = await this.query<{ plugin: string; seq: number }>('SELECT plugin, seq FROM event_cursors');
    return new Map(rows.map((r) => [r.plugin, r.seq]));
  }

  async deadLetters(filter: { plugin?: string; seq?: number } = {}): Promise<DeadLetter[]> {
    const rows = await this.query<DeadLetterRow>(
      'SELECT plugin, seq, attempts, last_error, failed_at FROM event_dead_letters WHERE ($1::text IS NULL OR plugin = $1) AND ($2::bigint IS NULL OR seq = $2) ORDER BY seq, plugin',
      [filter.plugin ?? null, filter.seq ?? null],
    );
    return rows.map(deadLetterFrom);
  }

  async backlog(after: number, points: readonly LifecyclePoint[]): Promise<Backlog> {
    const [filter, params] = pointFilter(points, 2);
    const [row] = await this.query<{ count: number; oldest: number | null }>(
      `SELECT count(*)::int AS count, min(at) AS oldest FROM events WHERE seq > $1${filter}`,
      [after, ...params],
    );
    return { count: row!.count, oldestAt: row!.oldest };
  }
}

export class PostgresOutboxWriter implements OutboxWriter {
  /** `query` runs on the write transaction's connection (and throws once it has ended). */
  constructor(private readonly query: Query) {}

  async append(event: NewEvent): Promise<number> {
    const [row] = await this.query<{ seq: number }>(INSERT_EVENT, newEventValues(event));
    return row!.seq;
  }

  async setCursor(plugin: string, seq: number): Promise<void> {
    await this.query('UPDATE event_cursors SET seq = $1 WHERE plugin = $2 AND seq < $1', [seq, plugin]);
  }

  async keepCursors(plugins: readonly string[]): Promise<void> {
    await this.query('DELETE FROM event_cursors WHERE plugin <> ALL($1::text[])', [plugins]);
    await this.query(
      'INSERT INTO event_cursors (plugin, seq) SELECT p, (SELECT coalesce(max(seq), 0) FROM events) FROM unnest($1::text[]) AS p ON CONFLICT (plugin) DO NOTHING',
      [plugins],
    );
  }

  async addDeadLetter(letter: DeadLetter): Promise<void> {
    await this.query(
      `INSERT INTO event_dead_letters (plugin, seq, attempts, last_error, failed_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (plugin, seq) DO UPDATE SET attempts = excluded.attempts, last_error = excluded.last_error, failed_at = excluded.failed_at`,
      [letter.plugin, letter.seq, letter.attempts, letter.lastError, Date.parse(letter.failedAt)],
    );
  }

  async removeDeadLetter(plugin: string, seq: number): Promise<boolean> {
    return (
      (await this.query<{ seq: number }>('DELETE FROM event_dead_letters WHERE plugin = $1 AND seq = $2 RETURNING seq', [plugin, seq]))
        .length > 0
    );
  }

  async prune(before: number): Promise<number> {
    const rows = await this.query<{ seq: number }>(
      `DELETE FROM events WHERE at < $1
         AND NOT EXISTS (SELECT 1 FROM event_cursors c WHERE c.seq < events.seq)
         AND NOT EXISTS (SELECT 1 FROM event_dead_letters d WHERE d.seq = events.seq)
       RETURNING seq`,
      [before],
    );
    return rows.length;
  }
}
