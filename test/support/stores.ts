// Runs a suite once per store: on SQLite and on PostgreSQL, from the same test file, so both keep
// the one contract of src/store/store.ts. The PostgreSQL cluster is a throwaway one
// (src/testing/postgres.ts), started on first use and shared by the whole test file, with a fresh
// database per store opened; it is stopped when the file's tests are done. Without PostgreSQL
// binaries the PostgreSQL half is skipped, saying why, except under CI=true, where it fails.
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

/** Declares `suite` twice: on SQLite and on PostgreSQL; `openStore` opens a store of that kind on fresh data. */
export function forEachStore(suite: (kind: StoreKind, openStore: OpenStore) => void): void {
  describe('on SQLite', () => suite('sqlite', () => openStoreOf('sqlite')));
  describe('on PostgreSQL', { skip: postgresSkip() }, () => suite('postgres', () => openStoreOf('postgres')));
}
