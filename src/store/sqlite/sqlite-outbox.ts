// The outbox tables in SQLite (migration "committed-event outbox"): reads on any connection,
// writes on the write connection inside the store's transaction. Seqs come from AUTOINCREMENT, so
// they grow in commit order (one write transaction at a time) and are never reused after pruning.
import type Database from 'better-sqlite3';
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

const INSERT_EVENT = `INSERT INTO events (${NEW_EVENT_COLUMNS.join(', ')}) VALUES (${NEW_EVENT_COLUMNS.map(() => '?').join(', ')})`;

/** `point IN (?, ?, …)` for the given points, with its parameters; no condition when `points` is undefined. */
function pointFilter(points: readonly LifecyclePoint[] | undefined): [string, string[]] {
  if (points === undefined) return ['', []];
  return [` AND point IN (${points.map(() => '?').join(', ') || 'NULL'})`, [...points]];
}

export class SqliteOutboxReader implements OutboxReader {
  constructor(private readonly db: Database.Database) {}

  async eventsAfter(seq: number, limit: number, points?: readonly LifecyclePoint[]): Promise<CommittedEvent[]> {
    const [filter, params] = pointFilter(points);
    return this.db
      .prepare<unknown[], EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE seq > ?${filter} ORDER BY seq LIMIT ?`)
      .all(seq, ...params, limit)
      .map(eventFrom);
  }

  async event(seq: number): Promise<CommittedEvent | undefined> {
    const row = this.db.prepare<[number], EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE seq = ?`).get(seq);
    return row && eventFrom(row);
  }

  async cursors(): Promise<Map<string, number>> {
    return new Map(
      this.db
        .prepare<[], { plugin: string; seq: number }>('SELECT plugin, seq FROM event_cursors')
        .all()
        .map((r) => [r.plugin, r.seq]),
    );
  }

  async deadLetters(filter: { plugin?: string; seq?: number } = {}): Promise<DeadLetter[]> {
    return this.db
      .prepare<[{ plugin: string | null; seq: number | null }], DeadLetterRow>(
        'SELECT plugin, seq, attempts, last_error, failed_at FROM event_dead_letters WHERE (@plugin IS NULL OR plugin = @plugin) AND (@seq IS NULL OR seq = @seq) ORDER BY seq, plugin',
      )
      .all({ plugin: filter.plugin ?? null, seq: filter.seq ?? null })
      .map(deadLetterFrom);
  }

  async backlog(after: number, points: readonly LifecyclePoint[]): Promise<Backlog> {
    const [filter, params] = pointFilter(points);
    const row = this.db
      .prepare<unknown[], { count: number; oldest: number | null }>(
        `SELECT count(*) AS count, min(at) AS oldest FROM events WHERE seq > ?${filter}`,
      )
      .get(after, ...params)!;
    return { count: row.count, oldestAt: row.oldest };
  }
}

export class SqliteOutboxWriter implements OutboxWriter {
  /** `db` gives the write connection, or throws when the transaction has ended. */
  constructor(private readonly db: () => Database.Database) {}

  async append(event: NewEvent): Promise<number> {
    const result = this.db()
      .prepare(INSERT_EVENT)
      .run(...newEventValues(event));
    return Number(result.lastInsertRowid);
  }

  async setCursor(plugin: string, seq: number): Promise<void> {
    this.db().prepare('UPDATE event_cursors SET seq = @seq WHERE plugin = @plugin AND seq < @seq').run({ seq, plugin });
  }

  async keepCursors(plugins: readonly string[]): Promise<void> {
    const db = this.db();
    const keep = JSON.stringify(plugins);
    db.prepare('DELETE FROM event_cursors WHERE plugin NOT IN (SELECT value FROM json_each(?))').run(keep);
    db.prepare(
      'INSERT OR IGNORE INTO event_cursors (plugin, seq) SELECT value, (SELECT coalesce(max(seq), 0) FROM events) FROM json_each(?)',
    ).run(keep);
  }

  async addDeadLetter(letter: DeadLetter): Promise<void> {
    this.db()
      .prepare('INSERT OR REPLACE INTO event_dead_letters (plugin, seq, attempts, last_error, failed_at) VALUES (?, ?, ?, ?, ?)')
      .run(letter.plugin, letter.seq, letter.attempts, letter.lastError, Date.parse(letter.failedAt));
  }

  async removeDeadLetter(plugin: string, seq: number): Promise<boolean> {
    return this.db().prepare('DELETE FROM event_dead_letters WHERE plugin = ? AND seq = ?').run(plugin, seq).changes > 0;
  }

  async prune(before: number): Promise<number> {
    return this.db()
      .prepare(
        `DELETE FROM events WHERE at < ?
           AND NOT EXISTS (SELECT 1 FROM event_cursors c WHERE c.seq < events.seq)
           AND NOT EXISTS (SELECT 1 FROM event_dead_letters d WHERE d.seq = events.seq)`,
      )
      .run(before).changes;
  }
}
