// keyhold backup / restore of the SQLite store: a backup taken while the server writes is whole;
// restored into a fresh data directory, a server starts on it and serves the data (tokens issued
// before the backup included: the signing keys are in the database); a restore over a database
// keeps that one aside; a restore is refused while a server holds the data directory, and for a
// file that is not a keyhold database, leaving the data directory as it was.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { startServer } from '../../src/server.js';
import {
  call,
  expectCode,
  killChildren,
  login,
  runCli,
  scratchDir,
  serverEnv,
  startTestServer,
  type TestServer,
} from '../support/keyhold.js';

const ROOT_SECRET = 'backup-root-secret';
after(killChildren);

function countEntities(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare<[], number>('SELECT count(*) FROM entities').pluck().get()!;
  } finally {
    db.close();
  }
}

async function createEntity(server: TestServer, token: string, id: string): Promise<void> {
  const response = await call(server.url, 'POST', '/v1/entities', { token, body: { id } });
  assert.equal(response.status, 201, response.text);
}

describe('keyhold backup and restore', () => {
  it('backs up while writes go on; the restore serves the data, old tokens included, and keeps the replaced database aside', async (t) => {
    const server = await startTestServer(ROOT_SECRET);
    t.after(() => server.close());
    const root = await login(server.url, 'root', ROOT_SECRET);
    await createEntity(server, root, 'before-backup');
    const file = join(scratchDir('backup'), 'keyhold-backup.sqlite');

    // Writes keep going while the backup runs (bounded: it stops with the backup, or after 2000 writes).
    let writing = true;
    let written = 0;
    const writes = (async () => {
      while (writing && written < 2000) await createEntity(server, root, `during-${written++}`);
    })();
    const backup = await runCli(['backup', file], serverEnv(server.dataDir));
    writing = false;
    await writes;
    expectCode(backup, 0, 'backup');
    assert.match(backup.stdout, /schema version/);
    const backedUp = countEntities(file);
    assert.ok(backedUp >= 2 && backedUp <= 2 + written, `entities in the backup: ${backedUp} (root, before-backup, up to ${written} more)`);

    const fresh = scratchDir('restored');
    const restored = expectCode(await runCli(['restore', file, '--json'], serverEnv(fresh)), 0, 'restore into a fresh data directory');
    assert.equal(JSON.parse(restored.stdout).replacedKeptAs, null);
    let handle = await startServer({ env: serverEnv(fresh), logger: pino({ level: 'silent' }) });
    try {
      assert.equal(
        (await call(handle.url, 'GET', '/v1/entities/before-backup', { token: root })).status,
        200,
        'a token from before the backup',
      );
      const again = await login(handle.url, 'root', ROOT_SECRET);
      assert.equal((await call(handle.url, 'GET', '/v1/entities?limit=1000', { token: again })).body.entities.length, backedUp);
      await createEntity({ url: handle.url } as TestServer, again, 'after-restore');
    } finally {
      await handle.close();
    }

    // A second restore over it: the database it replaces, with the entity written since, is kept aside.
    const second = JSON.parse(expectCode(await runCli(['restore', file, '--json'], serverEnv(fresh)), 0, 'restore over a database').stdout);
    assert.ok(existsSync(second.replacedKeptAs), second.replacedKeptAs);
    assert.equal(countEntities(second.replacedKeptAs), backedUp + 1);
    handle = await startServer({ env: serverEnv(fresh), logger: pino({ level: 'silent' }) });
    try {
      assert.equal((await call(handle.url, 'GET', '/v1/entities/after-restore', { token: root })).status, 404);
    } finally {
      await handle.close();
    }
  });

  it('refuses a restore while a server holds the data directory, and of a file that is not a keyhold database', async (t) => {
    const server = await startTestServer(ROOT_SECRET);
    t.after(() => server.close());
    const file = join(scratchDir('backup'), 'good.sqlite');
    expectCode(await runCli(['backup', file], serverEnv(server.dataDir)), 0, 'backup');
    const before = readdirSync(server.dataDir).sort();

    const busy = expectCode(await runCli(['restore', file], serverEnv(server.dataDir)), 1, 'restore while the server runs');
    assert.match(busy.stderr, /in use by another keyhold server .*stop that server first/);
    assert.deepEqual(readdirSync(server.dataDir).sort(), before);

    const empty = join(scratchDir('restore-target'), 'data');
    const text = join(scratchDir('not-keyhold'), 'notes.txt');
    writeFileSync(text, 'these are not the rows you are looking for\n'.repeat(200));
    const notSqlite = expectCode(await runCli(['restore', text], serverEnv(empty)), 1, 'restore of a text file');
    assert.match(notSqlite.stderr, /notes\.txt is not a keyhold database \(not an SQLite database/);
    const other = join(scratchDir('not-keyhold'), 'other.sqlite');
    const db = new Database(other);
    db.exec('CREATE TABLE recipes (name TEXT)');
    db.close();
    const notKeyhold = expectCode(await runCli(['restore', other], serverEnv(empty)), 1, 'restore of another SQLite database');
    assert.match(notKeyhold.stderr, /is not a keyhold database \(an SQLite database without keyhold's tables/);
    assert.ok(!existsSync(empty), 'nothing written, not even the data directory');

    const exists = expectCode(await runCli(['backup', file], serverEnv(server.dataDir)), 1, 'backup onto an existing file');
    assert.match(exists.stderr, /exists already/);
  });
});
