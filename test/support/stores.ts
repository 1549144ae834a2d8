// Runs a suite once per store: on SQLite and on PostgreSQL, from the same test file, so both keep
// the one contract of src/store/store.ts. The PostgreSQL cluster is a throwaway one
// (src/testing/postgres.ts), started on first use and shared by the whole test file, with a fresh
// database per store opened; it is stopped when the file's tests are done. Without PostgreSQL
// binaries the PostgreSQL half is skipped, saying why, except under CI=true, where it fails.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe } from 'node:test';
import type { Store } from '../../src/store/store.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { findPostgres, POSTGRES_MISSING, startPostgres, type TestPostgres } from '../../src/testing/postgres.js';

export type StoreKind = 'sqlite' | 'postgres';
export type OpenStore = () => Promise<Store>;

let cluster: Promise<TestPostgres> | undefined;
let warned = false;
after(async () => {
  if (cluster) await (await cluster.catch(() => undefined))?.stop();
});

/** The file's PostgreSQL cluster, started on first use. */
export function testPostgres(): Promise<TestPostgres> {
  return (cluster ??= startPostgres());
}

/** A fresh, empty PostgreSQL database of the file's cluster: its URL. */
export async function freshDatabaseUrl(): Promise<string> {
  return (await testPostgres()).createDatabase();
}

/** Why the PostgreSQL tests are skipped, or false when they run (always under CI=true: a missing PostgreSQL fails there). */
export function postgresSkip(): string | false {
  if (findPostgres() || process.env.CI === 'true') return false;
  if (!warned) process.stderr.write(`\n*** ${POSTGRES_MISSING} ***\n\n`);
  warned = true;
  return POSTGRES_MISSING;
}

/** Opens a store of `kind` on fresh, empty data. */
export async function openStoreOf(kind: StoreKind): Promise<Store> {
  return kind === 'sqlite' ? SqliteStore.open(':memory:') : PostgresStore.open(await freshDatabaseUrl());
}

/** One set of data that several stores can open, as several processes or servers would: an SQLite file, or a PostgreSQL database. */
export interface StoreSite {
  open(): Promise<Store>;
  /** Removes the data (after every store opened on it is closed). */
  remove(): void;
}

/** A fresh, empty site of `kind`. */
export async function newStoreSite(kind: StoreKind): Promise<StoreSite> {
  if (kind === 'postgres') {
    const url = await freshDatabaseUrl();
    return { open: () => PostgresStore.open(url), remove: () => {} };
  }
  const dir = mkdtempSync(join(tmpdir(), 'keyhold-store-site-'));
  return { open: async () => SqliteStore.open(join(dir, 'keyhold.sqlite')), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Declares `suite` twice: on SQLite and on PostgreSQL; `openStore` opens a store of that kind on fresh data. */
export function forEachStore(suite: (kind: StoreKind, openStore: OpenStore) => void): void {
  describe('on SQLite', () => suite('sqlite', () => openStoreOf('sqlite')));
  describe('on PostgreSQL', { skip: postgresSkip() }, () => suite('postgres', () => openStoreOf('postgres')));
}
