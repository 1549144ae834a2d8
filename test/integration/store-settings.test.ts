// Which store the settings choose, and what a start says when the PostgreSQL store cannot be used:
// SQLite by default; KEYHOLD_DATABASE_URL (or store.url) means PostgreSQL; a malformed URL, a
// missing one and an unreachable database stop `keyhold serve` with exit 2, naming the setting and
// what to do, and never printing the URL's password.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { freePort } from '../../src/testing/free-port.js';
import { configError } from '../support/config-errors.js';
import { expectCode, runCli, scratchDir, serverEnv } from '../support/keyhold.js';

const PASSWORD = 'Sekrit-Db-Pass-9';

describe('store settings', () => {
  it('default to SQLite; a database URL from the environment or the file means PostgreSQL', () => {
    const cwd = scratchDir('store-cfg');
    assert.deepEqual(loadConfig({ env: {}, cwd }).store, { kind: 'sqlite' });
    const url = `postgres://kh:${PASSWORD}@db.example:5432/keyhold`;
    assert.deepEqual(loadConfig({ env: { KEYHOLD_DATABASE_URL: url }, cwd }).store, {
      kind: 'postgres',
      url,
      source: 'KEYHOLD_DATABASE_URL',
    });
    writeFileSync(join(cwd, 'keyhold.yaml'), `store:\n  kind: postgres\n  url: ${url}\n`);
    assert.deepEqual(loadConfig({ env: {}, cwd }).store, { kind: 'postgres', url, source: join(cwd, 'keyhold.yaml') });
  });

  it('refuses a malformed URL, a missing one and a URL with kind sqlite, without repeating a password', () => {
    const cwd = scratchDir('store-cfg');
    const notPostgres = configError(() => loadConfig({ env: { KEYHOLD_DATABASE_URL: `mysql://kh:${PASSWORD}@db/keyhold` }, cwd }));
    assert.equal(notPostgres.source, 'KEYHOLD_DATABASE_URL');
    assert.equal(notPostgres.path, 'store.url');
    assert.match(notPostgres.problem, /expected a postgres:\/\/ or postgresql:\/\/ URL/);
    const garbled = configError(() => loadConfig({ env: { KEYHOLD_DATABASE_URL: `postgres//kh:${PASSWORD}@db` }, cwd }));
    assert.match(garbled.problem, /not a URL/);
    for (const err of [notPostgres, garbled]) assert.doesNotMatch(err.message, new RegExp(PASSWORD));
    const noUrl = configError(() => loadConfig({ env: { KEYHOLD_STORE: 'postgres' }, cwd }));
    assert.equal(noUrl.path, 'store.url');
    assert.match(noUrl.problem, /no database URL is set; set store.url \(or KEYHOLD_DATABASE_URL\)/);
    const both = configError(() => loadConfig({ env: { KEYHOLD_STORE: 'sqlite', KEYHOLD_DATABASE_URL: 'postgres://db/keyhold' }, cwd }));
    assert.match(both.problem, /store.kind is sqlite/);
    const kind = configError(() => loadConfig({ env: { KEYHOLD_STORE: 'mysql' }, cwd }));
    assert.equal(kind.path, 'store.kind');
  });

  it('stops the start with exit 2 when the database cannot be reached, naming it without its password', async () => {
    const dataDir = join(scratchDir('store-serve'), 'data');
    // A loopback port nothing listens on: the connection is refused at once.
    const url = `postgres://kh:${PASSWORD}@127.0.0.1:${await freePort()}/keyhold`;
    const serve = expectCode(await runCli(['serve'], serverEnv(dataDir, { KEYHOLD_DATABASE_URL: url })), 2, 'unreachable database');
    assert.match(
      serve.stderr,
      /bad configuration: KEYHOLD_DATABASE_URL: store.url: cannot use the PostgreSQL database at postgres:\/\/kh:\*\*\*@127.0.0.1:\d+\/keyhold: .*ECONNREFUSED.*; check that PostgreSQL runs there/,
    );
    assert.doesNotMatch(serve.stderr + serve.stdout, new RegExp(PASSWORD));
  });
});
