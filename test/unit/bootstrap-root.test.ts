// The bootstrap root's id, kept in the store: the default break-glass exemption of login policy
// plugins (src/host/break-glass.ts) must survive restarts, and a store bootstrapped before the
// record existed gets one from its data.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { forEachStore, newStoreSite } from '../support/stores.js';

const dir = mkdtempSync(join(tmpdir(), 'keyhold-bootstrap-root-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The migration that made server_facts: the one whose SQL creates it. */
const FACTS_MIGRATION = MIGRATIONS.findIndex((m) => m.sql.includes('CREATE TABLE server_facts'));

forEachStore((kind) => {
  it('is recorded, replaced and kept across a reopen', async () => {
    const site = await newStoreSite(kind);
    const store = await site.open();
    assert.equal(await store.reader.bootstrapRoot(), undefined);
    await store.write((tx) => tx.recordBootstrapRoot('first'));
    await store.write((tx) => tx.recordBootstrapRoot('admin0'));
    await store.close();
    const again = await site.open();
    assert.equal(await again.reader.bootstrapRoot(), 'admin0');
    await again.close();
    site.remove();
  });
});

describe('the recorded bootstrap root, SQLite only', () => {
  it('an older store: the oldest entity still holding GLOBAL_ROOT directly stands for it', async () => {
    const file = join(dir, 'older.sqlite');
    const raw = new Database(file);
    raw.pragma('foreign_keys = ON');
    for (const migration of MIGRATIONS.slice(0, FACTS_MIGRATION)) raw.exec(migration.sql);
    raw.pragma(`user_version = ${FACTS_MIGRATION}`);
    const insert = raw.prepare("INSERT INTO entities (id, number, secret, display_name, legal_name, data) VALUES (?, ?, '', '', '', x'')");
    const capability = raw.prepare("INSERT INTO entity_capabilities (entity_id, capability) VALUES (?, 'GLOBAL_ROOT')");
    // "gone" was the first root and was destroyed; "plain" is older than the root but holds nothing.
    for (const [number, id] of ['gone', 'plain', 'boss', 'later-root'].entries()) insert.run(id, number + 1);
    for (const id of ['gone', 'boss', 'later-root']) capability.run(id);
    raw.prepare("DELETE FROM entities WHERE id = 'gone'").run();
    raw.close();
    const store = SqliteStore.open(file);
    assert.equal(await store.reader.bootstrapRoot(), 'boss');
    await store.close();
  });
});
