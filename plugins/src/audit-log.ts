#!/usr/bin/env node
// audit-log: one JSON line per committed change (who, from where, what, when, which request), appended to a
// file from the committed events: a change that was rolled back (vetoed, failed) leaves no line.
// Delivery is at least once, so an event may come twice (a retry after a timeout, a restart):
// a line whose event (seq + request id) is already among the file's last lines is not written again.
// Never records a secret.
import { open, type FileHandle } from 'node:fs/promises';
import {
  COMMITTED_HOOKS,
  ConfiguredPlugin,
  isMainModule,
  serve,
  setting,
  type CommittedEvent,
  type CommittedHookName,
  type JsonObject,
  type JsonValue,
} from 'keyhold-plugin-sdk';

const schema = {
  /** The log file; created (mode 0600) if missing, only ever appended to. */
  file: setting.string({ nonEmpty: true }),
};

/** How much of the file's end is read at start to know the events already written. */
const TAIL_BYTES = 256 * 1024;
/** Events remembered as written (the most recent ones): redeliveries come soon after the first. */
const REMEMBERED = 10_000;

/** `value` with every field named "secret" removed, at any depth. */
function withoutSecrets(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(withoutSecrets);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).flatMap(([k, v]) => (k === 'secret' ? [] : [[k, withoutSecrets(v)]])));
}

function eventKey(seq: unknown, requestId: unknown): string {
  return `${String(seq)}:${String(requestId)}`;
}

export class AuditLog extends ConfiguredPlugin(schema) {
  override readonly name = 'audit-log';
  override readonly version = '2.1.0';
  private file: FileHandle | undefined;
  /** Keys of the events written lately, oldest first. */
  private readonly written = new Set<string>();

  constructor() {
    super();
    // The same handler at every lifecycle point: an event exists only for a change that was committed.
    for (const { name } of COMMITTED_HOOKS) Object.assign(this, { [name]: (event: CommittedEvent) => this.record(name, event) });
  }

  override async configure(config: JsonObject): Promise<void> {
    await super.configure(config);
    this.file = await open(this.settings.file, 'a+', 0o600);
    await this.rememberTail(this.file);
  }

  /** Appends the line and waits for it to reach the disk; a failure (disk full) makes the host deliver the event again later. */
  async record(hook: CommittedHookName, event: CommittedEvent): Promise<void> {
    if (!this.file) throw new Error('audit-log has no file: configure() did not run');
    const key = eventKey(event.seq, event.requestId);
    if (this.written.has(key)) return;
    const line = {
      time: event.at,
      seq: event.seq,
      requestId: event.requestId,
      caller: event.caller,
      // Where the request came from; absent from an event committed by a host older than these fields, or (address, agent, client) not known.
      source: event.source,
      clientAddress: event.clientAddress,
      userAgent: event.userAgent,
      client: event.client,
      operation: event.operation,
      hook,
      [event.subjectKind]: event.subjectKey,
      request: withoutSecrets(event.request),
    };
    await this.file.appendFile(`${JSON.stringify(line)}\n`);
    await this.file.datasync();
    this.remember(key);
  }

  private remember(key: string): void {
    this.written.add(key);
    if (this.written.size > REMEMBERED) this.written.delete(this.written.values().next().value!);
  }

  /** Remembers the events of the file's last lines (a restarted plugin may be given them again). */
  private async rememberTail(file: FileHandle): Promise<void> {
    const { size } = await file.stat();
    const length = Math.min(size, TAIL_BYTES);
    const { buffer } = await file.read(Buffer.alloc(length), 0, length, size - length);
    const lines = buffer.toString('utf8').split('\n');
    // The first line may be cut in the middle, unless the whole file was read.
    for (const text of length < size ? lines.slice(1) : lines) {
      try {
        const line = JSON.parse(text) as { seq?: unknown; requestId?: unknown };
        if (line.seq !== undefined) this.remember(eventKey(line.seq, line.requestId));
      } catch {
        // Not a line of ours (empty, cut, or written by an older version): nothing to remember.
      }
    }
  }
}

if (isMainModule(import.meta.url)) serve(new AuditLog());
