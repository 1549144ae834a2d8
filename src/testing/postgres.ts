// A throwaway PostgreSQL for the tests and benchmarks: a fresh cluster (initdb) in a temporary
// directory, listening on a free loopback port only (its unix socket in that directory too), with
// fsync off (the data is thrown away) unless asked to be durable (the benchmarks, which compare its
// commits with SQLite's fsynced ones), found ready by connecting to it, and stopped with an
// immediate shutdown before its directory is removed. PostgreSQL refuses to run as root, so as
// root it runs as the `postgres` user (setpriv) with the directory handed to that user. A small
// shell watches its stdin: when the test process ends, even killed, the pipe closes and the shell
// shuts the server down, so no cluster outlives its test file. `findPostgres` says whether there
// is one to run; POSTGRES_MISSING says what to install when not.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, chownSync, constants, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { freePort } from './free-port.js';

export const POSTGRES_MISSING =
  'PostgreSQL binaries not found (install Debian package postgresql: apt-get install postgresql): the PostgreSQL store tests are skipped';
/** The superuser of the throwaway cluster (trust authentication on loopback: nothing else can reach it). */
const SUPERUSER = 'keyhold';
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The directory holding initdb and postgres: `pg_config --bindir` (when it has them), else the newest /usr/lib/postgresql/<n>/bin; undefined when there is none. */
export function findPostgres(): string | undefined {
  const candidates: string[] = [];
  try {
    candidates.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    // No pg_config on PATH (Debian's server package does not put one there).
  }
  try {
    const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => `/usr/lib/postgresql/${v}/bin`));
  } catch {
    // Not a Debian layout.
  }
  return candidates.find((dir) => executable(join(dir, 'initdb')) && executable(join(dir, 'postgres')));
}

/** The command to run `argv` as the cluster's owner: as root, the `postgres` user; otherwise ourselves. */
function asOwner(argv: string[]): [string, string[]] {
  return process.getuid?.() === 0
    ? ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', ...argv]]
    : [argv[0]!, argv.slice(1)];
}

function ownerIds(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

export interface TestPostgres {
  /** The port on 127.0.0.1 it listens on. */
  port: number;
  /** A connection URL for `database` as the cluster's superuser. */
  url(database: string): string;
  /** Creates a fresh, empty database and returns its URL. */
  createDatabase(): Promise<string>;
  /** Stops the server and removes its directory; safe to call twice. */
  stop(): Promise<void>;
}

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

export interface PostgresOptions {
  /** fsync, synchronous commit and full page writes on, as a production server runs (default off: tests throw their data away). */
  durable?: boolean;
}

/** Starts a fresh cluster; rejects with POSTGRES_MISSING when there are no binaries. Stop it with stop(), in an after hook. */
export async function startPostgres(options: PostgresOptions = {}): Promise<TestPostgres> {
  const bin = findPostgres();
  if (!bin) throw new Error(POSTGRES_MISSING);
  const dir = mkdtempSync(join(tmpdir(), 'keyhold-pg-'));
  let server: ChildProcess | undefined;
  let output = '';
  const stop = async (): Promise<void> => {
    const child = server;
    server = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      // The watching shell shuts the server down (SIGQUIT: immediate, the data is thrown away); SIGKILL only if it hangs.
      child.stdin!.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    if (process.getuid?.() === 0) {
      const { uid, gid } = ownerIds();
      chownSync(dir, uid, gid);
    }
    const data = join(dir, 'data');
    const [initdb, initArgs] = asOwner([
      join(bin, 'initdb'),
      '-D',
      data,
      '-U',
      SUPERUSER,
      '--auth=trust',
      '--encoding=UTF8',
      '--no-locale',
      '--no-sync',
    ]);
    execFileSync(initdb, initArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
    const port = await freePort();
    const settings = {
      listen_addresses: '127.0.0.1',
      port: String(port),
      unix_socket_directories: dir,
      ...(options.durable ? {} : { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' }),
      max_connections: '200',
    };
    // The shell runs the postmaster, waits for its own stdin to close (stop(), or this process's end), then shuts it down at once
    // and removes the directory (mkdtemp's name needs no quoting beyond this).
    const watch = `"$0" "$@" </dev/null & pid=$!; read -r _; kill -QUIT "$pid"; wait "$pid"; rm -rf '${dir}'`;
    const [postgres, args] = asOwner([
      'sh',
      '-c',
      watch,
      join(bin, 'postgres'),
      '-D',
      data,
      ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
    ]);
    server = spawn(postgres, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    server.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    server.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const url = (database: string) => `postgres://${SUPERUSER}@127.0.0.1:${port}/${database}`;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!(await canConnect(url('postgres')))) {
      if (server.exitCode !== null || server.signalCode !== null) throw new Error(`PostgreSQL exited at start:\n${output}`);
      if (Date.now() > deadline) throw new Error(`PostgreSQL did not accept connections within ${READY_TIMEOUT_MS} ms:\n${output}`);
      await sleep(50);
    }
    let databases = 0;
    return {
      port,
      url,
      async createDatabase() {
        const name = `keyhold_test_${++databases}`;
        const admin = new pg.Client({ connectionString: url('postgres') });
        await admin.connect();
        try {
          await admin.query(`CREATE DATABASE ${name}`);
        } finally {
          await admin.end();
        }
        return url(name);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
