// The outbox's rows as both stores keep them (the same columns in SQLite and PostgreSQL): the
// objects, the request and where it came from as one JSON body, times as epoch ms; and their mapping to the
// CommittedEvent and DeadLetter the outbox's callers see.
import type { CommittedEvent, JsonObject, LifecyclePoint, OperationName, RequestProvenance, SubjectKind } from 'keyhold-plugin-sdk';
import type { DeadLetter, NewEvent } from './outbox.js';

export interface EventRow {
  seq: number;
  at: number;
  point: LifecyclePoint;
  operation: OperationName;
  subject_kind: SubjectKind;
  subject_key: string;
  request_id: string;
  caller: string | null;
  body: string;
}

export interface DeadLetterRow {
  plugin: string;
  seq: number;
  attempts: number;
  last_error: string;
  failed_at: number;
}

/**
 * What lives in the body column: the objects, the request and where it came from, JSON. Rows
 * written before the provenance fields existed have none of them: they read as events without.
 */
type EventBody = Pick<CommittedEvent, 'before' | 'after' | 'request' | keyof RequestProvenance>;

/** The body column of `event`. */
function eventBody({ before, after, request, source, clientAddress, userAgent, client }: NewEvent): string {
  const body: EventBody = { before, after, request, source, clientAddress, userAgent, client };
  // JSON.stringify leaves out the fields that are undefined.
  return JSON.stringify(body);
}

/** The columns an append writes, in the order of newEventValues. */
export const NEW_EVENT_COLUMNS = ['at', 'point', 'operation', 'subject_kind', 'subject_key', 'request_id', 'caller', 'body'] as const;

/** An appended event's column values (seq is the database's), in the order of NEW_EVENT_COLUMNS. */
export function newEventValues(event: NewEvent): [number, string, string, string, string, string, string | null, string] {
  return [
    Date.parse(event.at),
    event.point,
    event.operation,
    event.subjectKind,
    event.subjectKey,
    event.requestId,
    event.caller,
    eventBody(event),
  ];
}

export const EVENT_COLUMNS = 'seq, at, point, operation, subject_kind, subject_key, request_id, caller, body';

export function eventFrom(row: EventRow): CommittedEvent {
  const { source, clientAddress, userAgent, client, ...body } = JSON.parse(row.body) as EventBody;
  return {
    seq: row.seq,
    point: row.point,
    operation: row.operation,
    subjectKind: row.subject_kind,
    subjectKey: row.subject_key,
    before: body.before,
    after: body.after,
    request: body.request as JsonObject,
    requestId: row.request_id,
    caller: row.caller,
    ...(source !== undefined && { source }),
    ...(clientAddress !== undefined && { clientAddress }),
    ...(userAgent !== undefined && { userAgent }),
    ...(client !== undefined && { client }),
    at: new Date(row.at).toISOString(),
  };
}

export function deadLetterFrom(row: DeadLetterRow): DeadLetter {
  return {
    plugin: row.plugin,
    seq: row.seq,
    attempts: row.attempts,
    lastError: row.last_error,
    failedAt: new Date(row.failed_at).toISOString(),
  };
}
