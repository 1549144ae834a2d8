// One server per data directory: a second one refuses to start, naming the directory, the other
// server's pid and the setting to change (`keyhold serve` exits 2 with that); a lock left by a
// server that is gone, or whose pid now belongs to another process, is taken over with a log
// line; closing the server removes its lock.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { DataDirInUseError, LOCK_FILE } from '../../src/data-dir-lock.js';
import { startServer, type ServerHandle } from '../../src/server.js';
import { call, capturingLogger, killChildren, runCli, scratchDir, serverEnv, startServerProcess } from '../support/keyhold.js';

after(killChildren);

function start(dataDir: string, logger = pino({ level: 'silent' })): Promise<ServerHandle> {
  return startServer({ env: serverEnv(dataDir, { KEYHOLD_BOOTSTRAP: 'root:pw' }), logger });
}

/** The pid of a process that has run and exited (and been reaped). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  assert.equal(child.status, 0);
  return child.pid!;
}

describe('data directory lock', () => {
  it('refuses a second server on the same data directory, and lets one start once the first has closed', async () => {
    const dataDir = scratchDir('lock');
    const first = await start(dataDir);
    try {
      // A second server that did start is closed at once, so a failure here cannot leave it running.
      const err = await start(dataDir).then(
        async (second) => second.close().then(() => new Error('a second server started on the same data directory')),
        (refusal: unknown) => refusal,
      );
      assert.ok(err instanceof DataDirInUseError, String(err));
      assert.equal(err.pid, process.pid);
      assert.match(
        err.message,
        new RegExp(
          `the data directory ${dataDir} is in use by another keyhold server \\(pid ${process.pid}; lock file ${join(dataDir, LOCK_FILE)}\\)`,
        ),
      );
      assert.match(err.message, /KEYHOLD_DATA_DIR, or dataDir in keyhold\.yaml/);
      assert.equal((await call(first.url, 'GET', '/healthz')).status, 200, 'the refused start left the first server alone');
      assert.equal(JSON.parse(readFileSync(join(dataDir, LOCK_FILE), 'utf8')).pid, process.pid, 'and its lock');
    } finally {
      await first.close();
    }
    assert.equal(existsSync(join(dataDir, LOCK_FILE)), false, 'closing removes the lock');
    await (await start(dataDir)).close();
  });

  const STALE: [string, () => string][] = [
    ['a process that has exited', () => JSON.stringify({ pid: deadPid(), startTime: null })],
    ['a pid now used by another process (another start time)', () => JSON.stringify({ pid: process.pid, startTime: '1' })],
    ['no readable owner', () => 'not a lock'],
  ];
  for (const [what, content] of STALE) {
    it(`takes over a stale lock naming ${what}, with a log line`, async () => {
      const dataDir = scratchDir('lock');
      mkdirSync(dataDir, { recursive: true });
      writeFileSync(join(dataDir, LOCK_FILE), content());
      const { logger, records } = capturingLogger('warn');
      const server = await start(dataDir, logger);
      try {
        assert.equal(JSON.parse(readFileSync(join(dataDir, LOCK_FILE), 'utf8')).pid, process.pid);
        const takeover = records.find((r) => String(r.msg).startsWith('taking over the stale data directory lock'));
        assert.ok(takeover, JSON.stringify(records));
        assert.equal(takeover.level, 40);
      } finally {
        await server.close();
      }
    });
  }

  it('makes `keyhold serve` exit 2 with the reason when another server holds the directory', async () => {
    const dataDir = scratchDir('lock');
    const env = serverEnv(dataDir, { KEYHOLD_BOOTSTRAP: 'root:pw' });
    const first = await startServerProcess(env);
    try {
      const second = await runCli(['serve'], env);
      assert.equal(second.code, 2, second.stderr);
      assert.match(
        second.stderr,
        new RegExp(`^keyhold: the data directory ${dataDir} is in use by another keyhold server \\(pid ${first.child.pid};`),
      );
      assert.match(second.stderr, /KEYHOLD_DATA_DIR/);
    } finally {
      assert.equal(await first.stop(), 0);
    }
    assert.equal(existsSync(join(dataDir, LOCK_FILE)), false);
  });
});
