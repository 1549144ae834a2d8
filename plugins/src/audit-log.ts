#!/usr/bin/env node
// audit-log: one JSON line per accepted change (who, what, when, which request), appended to a
// file and flushed to disk before the change is committed. Never records a secret.
import { open, type FileHandle } from 'node:fs/promises';
import { ConfiguredPlugin, HOOKS, isMainModule, serve, setting, type Entity, type Group, type HookContext, type HookName, type JsonObject, type JsonValue } from 'keyhold-plugin-sdk';

const schema = {
  /** The log file; created (mode 0600) if missing, only ever appended to. */
  file: setting.string({ nonEmpty: true }),
};

/** `value` with every field named "secret" removed, at any depth. */
function withoutSecrets(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(withoutSecrets);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).flatMap(([k, v]) => (k === 'secret' ? [] : [[k, withoutSecrets(v)]])));
}

export class AuditLog extends ConfiguredPlugin(schema) {
  override readonly name = 'audit-log';
  override readonly version = '1.0.0';
  private file: FileHandle | undefined;

  constructor() {
    super();
    // The same hook at every lifecycle point: POST runs only once the change passed every PRE hook and the built-in checks.
    for (const { name, phase } of HOOKS) {
      if (phase === 'post') Object.assign(this, { [name]: (subject: Entity | Group, request: JsonObject, context: HookContext) => this.record(name, subject, request, context) });
    }
  }

  override async configure(config: JsonObject): Promise<void> {
    await super.configure(config);
    this.file = await open(this.settings.file, 'a', 0o600);
  }

  /** Appends the line and waits for it to reach the disk; a failure here aborts the request, so no change goes unrecorded. */
  async record<S extends Entity | Group>(hook: HookName, subject: S, request: JsonObject, context: HookContext): Promise<S> {
    if (!this.file) throw new Error('audit-log has no file: configure() did not run');
    const line = {
      time: new Date(this.now()).toISOString(),
      requestId: context.requestId,
      caller: context.caller,
      operation: context.operation,
      hook,
      ...('id' in subject ? { entity: subject.id } : { group: subject.name }),
      request: withoutSecrets(request),
    };
    await this.file.appendFile(`${JSON.stringify(line)}\n`);
    await this.file.datasync();
    return subject;
  }
}

if (isMainModule(import.meta.url)) serve(new AuditLog());
