// A writer killed with SIGKILL mid-stream loses nothing it acknowledged and leaves nothing torn.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, it } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';

const WRITER = fileURLToPath(new URL('../fixtures/durability-writer.js', import.meta.url));
/** Acknowledgements to wait for before the kill. */
const ACKS_BEFORE_KILL = 300;
/** The writer would stop by itself after this many; the kill must come long before. */
const WRITE_LIMIT = 100_000;
const WAIT_MS = 60_000;

const dir = mkdtempSync(join(tmpdir(), 'keyhold-durability-'));
let child: ChildProcess | undefined;
after(() => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the writer until it has acknowledged `acks` writes, kills it, and returns every id it acknowledged. */
function writeUntilKilled(file: string, acks: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const acked: string[] = [];
    let stderr = '';
    let pending = '';
    const writer = spawn(process.execPath, [WRITER, file, String(WRITE_LIMIT)], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = writer;
    const timer = setTimeout(() => {
      writer.kill('SIGKILL');
      reject(new Error(`only ${acked.length} acknowledgements within ${WAIT_MS} ms; stderr: ${stderr}`));
    }, WAIT_MS);
    writer.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    writer.stdout!.on('data', (chunk: Buffer) => {
      const lines = (pending + chunk.toString()).split('\n');
      pending = lines.pop()!;
      acked.push(...lines);
      if (acked.length >= acks && writer.signalCode === null) writer.kill('SIGKILL');
    });
    // 'close' comes after stdout has been read to its end, so every printed id is in `acked`.
    writer.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL' && acked.length >= acks) resolve(acked);
      else
        reject(new Error(`the writer ended with code ${code}, signal ${signal} after ${acked.length} acknowledgements; stderr: ${stderr}`));
    });
  });
}

it('keeps every acknowledged write of a process killed with SIGKILL, and nothing torn', { timeout: WAIT_MS + 30_000 }, async () => {
  const file = join(dir, 'durable.sqlite');
  const acked = await writeUntilKilled(file, ACKS_BEFORE_KILL);
  // Killed before any checkpoint of its last commits: recovery has to replay the WAL.
  assert.ok(statSync(`${file}-wal`).size > 0, 'the killed writer left a write-ahead log');

  const raw = new Database(file);
  assert.deepEqual(raw.pragma('integrity_check'), [{ integrity_check: 'ok' }]);
  assert.deepEqual(raw.pragma('foreign_key_check'), []);
  raw.close();

  const store = SqliteStore.open(file);
  try {
    const count = await store.reader.countEntities();
    // The write in flight at the kill either committed whole (but was not printed) or not at all.
    assert.ok(count === acked.length || count === acked.length + 1, `${count} entities stored, ${acked.length} acknowledged`);
    const stored = await store.reader.searchEntities({ text: 'durable-', limit: count + 1 });
    assert.equal(stored.length, count);
    const ids = new Set(stored.map((e) => e.id));
    for (const id of acked) assert.ok(ids.has(id), `acknowledged ${id} is missing`);
    for (const e of stored) {
      const seq = e.id.slice('durable-'.length);
      assert.equal(e.meta.displayName, `Durable ${seq}`);
      assert.deepEqual(e.meta.untypedMeta, [`seq:${seq}`]);
      assert.deepEqual(e.meta.kv, { seq: { values: [seq] } });
      assert.deepEqual(e.meta.groups, ['durable'], `${e.id} was stored without the membership written with it`);
    }
    assert.equal((await store.reader.directMembers('durable')).length, count);
  } finally {
    await store.close();
  }
});
