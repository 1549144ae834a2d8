// The SDK's plugin logger (sdk/src/logger.ts): pino's calling convention and level filtering,
// records to the host route or, without one, to stderr as JSON lines, and pino loaded only with
// the first record written.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
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
    assert.deepEqual(
      { ...(err.fields!.err as object), stack: typeof (err.fields!.err as { stack: unknown }).stack },
      { type: 'TypeError', message: 'boom', stack: 'string' },
    );
    logger.level = 'trace';
    logger.trace('now written');
    assert.equal(records.at(-1)!.msg, 'now written');
  });

  it("adds a child's bindings to each record; the child starts at its parent's level", () => {
    const records = collect();
    const logger = createPluginLogger('warn');
    const child = logger.child({ component: 'cache' });
    child.info('below warn');
    child.level = 'info';
    child.info({ hits: 2 }, 'counted');
    logger.info("still below the parent's level");
    assert.deepEqual(records, [{ level: 'info', msg: 'counted', fields: { component: 'cache', hits: 2 } }]);
  });

  it('refuses an unknown level by name', () => {
    assert.throws(
      () => (createPluginLogger().level = 'verbose' as 'info'),
      /unknown log level "verbose": expected one of trace, debug, info, warn, error, fatal/,
    );
  });

  it('writes JSON lines to stderr while no host is connected', (t) => {
    const lines: string[] = [];
    t.mock.method(process.stderr, 'write', (line: string) => lines.push(line) > 0);
    createPluginLogger().warn({ n: 1 }, 'to stderr');
    assert.deepEqual(
      lines.map((l) => JSON.parse(l)),
      [{ level: 'warn', msg: 'to stderr', n: 1 }],
    );
  });

  it('loads pino with the first record written, not before (in a fresh process)', () => {
    const script = `
      import { createRequire } from 'node:module';
      const { createPluginLogger } = await import('keyhold-plugin-sdk');
      const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes('/node_modules/pino/'));
      const logger = createPluginLogger('info');
      const seen = [loaded()];
      logger.debug('below the level');
      seen.push(loaded());
      logger.info('written');
      seen.push(loaded());
      console.log(JSON.stringify(seen));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: import.meta.dirname,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    assert.deepEqual(JSON.parse(out), [false, false, true]);
  });
});
