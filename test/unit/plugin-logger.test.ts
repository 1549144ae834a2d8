// The SDK's plugin logger (sdk/src/logger.ts): pino's calling convention, level filtering, errors
// as fields, and records to the host route or, without one, to stderr as JSON lines.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { createPluginLogger, routeLogsToHost, type LogParams } from 'keyhold-plugin-sdk';

function collect(): LogParams[] {
  const records: LogParams[] = [];
  routeLogsToHost((record) => records.push(record));
  return records;
}

describe('plugin logger', () => {
  afterEach(() => routeLogsToHost(undefined));

  it('takes (message), (fields, message) and (error, message?), and writes only from its level up', () => {
    const records = collect();
    const logger = createPluginLogger('info');
    logger.debug('not written');
    logger.info('plain');
    logger.warn({ entity: 'alice', fails: 3 }, 'with fields');
    logger.error(new TypeError('boom'));
    assert.deepEqual(records.slice(0, 2), [
      { level: 'info', msg: 'plain', fields: {} },
      { level: 'warn', msg: 'with fields', fields: { entity: 'alice', fails: 3 } },
    ]);
    const err = records[2]!;
    assert.equal(err.msg, 'boom');
    assert.deepEqual({ ...(err.fields!.err as object), stack: typeof (err.fields!.err as { stack: unknown }).stack }, { type: 'TypeError', message: 'boom', stack: 'string' });
    logger.level = 'trace';
    logger.trace('now written');
    assert.equal(records.at(-1)!.msg, 'now written');
  });

  it('adds a child\'s bindings to each record; the child shares the level', () => {
    const records = collect();
    const logger = createPluginLogger('warn');
    const child = logger.child({ component: 'cache' });
    child.info('below warn');
    logger.level = 'info';
    child.info({ hits: 2 }, 'counted');
    assert.deepEqual(records, [{ level: 'info', msg: 'counted', fields: { component: 'cache', hits: 2 } }]);
  });

  it('refuses an unknown level by name, and still sends a record whose fields are not JSON', () => {
    const records = collect();
    const logger = createPluginLogger();
    assert.throws(() => (logger.level = 'verbose' as 'info'), /unknown log level "verbose": expected one of trace, debug, info, warn, error, fatal/);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    logger.info(cycle, 'cyclic');
    assert.equal(records[0]!.msg, 'cyclic');
    assert.match(String(records[0]!.fields!.fieldsDropped), /could not be written as JSON/);
  });

  it('writes JSON lines to stderr while no host is connected', (t) => {
    const lines: string[] = [];
    t.mock.method(process.stderr, 'write', (line: string) => lines.push(line) > 0);
    createPluginLogger().warn({ n: 1 }, 'to stderr');
    assert.deepEqual(lines.map((l) => JSON.parse(l)), [{ level: 'warn', msg: 'to stderr', n: 1 }]);
  });
});
