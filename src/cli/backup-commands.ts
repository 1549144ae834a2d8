// keyhold backup FILE | restore FILE: the SQLite database of a data directory, copied out while
// the server runs (an online backup) or put back while it is stopped. Both work on this machine's
// data directory (from --config / KEYHOLD_CONFIG / ./keyhold.yaml and KEYHOLD_DATA_DIR, as
// `keyhold serve` finds it), not through the API: the backup file is written by the user running
// the command, where it says, and no API route writes files on the server. PostgreSQL sites use
// pg_dump/pg_restore instead (docs/deployment.md).
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { pino } from 'pino';
import { CliError } from './client.js';
import { fields } from './context.js';

interface LocalOptions {
  config?: string;
}

/** The data directory and database file `keyhold serve` would use with the same settings. */
async function databaseOf(options: LocalOptions): Promise<{ dataDir: string; database: string }> {
  const [{ loadConfig, ConfigError }, { DATABASE_FILE }] = await Promise.all([import('../config.js'), import('../server.js')]);
  try {
    const { dataDir } = loadConfig({ ...(options.config !== undefined && { file: options.config }), env: process.env, cwd: process.cwd() });
    return { dataDir, database: join(dataDir, DATABASE_FILE) };
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(`bad configuration: ${err.message}`, 2);
    throw err;
  }
}

/** Runs a backup or restore, turning its refusals into the CLI's errors. */
async function refusedAsCliError<T>(work: () => Promise<T>): Promise<T> {
  const [{ BackupError }, { DataDirInUseError }] = await Promise.all([import('../store/sqlite/backup.js'), import('../data-dir-lock.js')]);
  try {
    return await work();
  } catch (err) {
    if (err instanceof DataDirInUseError)
      throw new CliError(`restore refused: ${err.message.replace(/; stop that server.*$/, '')}; stop that server first, then restore`);
    if (err instanceof BackupError) throw new CliError(err.message);
    throw err;
  }
}

function report(command: Command, value: Record<string, unknown>, human: () => void): void {
  if (command.optsWithGlobals<{ json?: boolean }>().json) process.stdout.write(`${JSON.stringify(value)}\n`);
  else human();
}

export function backupCommands(): Command[] {
  const backup = new Command('backup')
    .description(
      "write a copy of this machine's keyhold database (the data directory's keyhold.sqlite) to FILE; works while the server runs",
    )
    .argument(
      '<file>',
      'where to write the backup (must not exist yet); it holds secret hashes and token signing keys: keep it as safe as the data directory',
    )
    .option(
      '--config <file>',
      'settings file naming the data directory (default: KEYHOLD_CONFIG, or ./keyhold.yaml when present; KEYHOLD_DATA_DIR overrides)',
    )
    .action(async (file: string, options: LocalOptions, command: Command) => {
      const { database } = await databaseOf(options);
      const target = resolve(file);
      const { backupDatabase } = await import('../store/sqlite/backup.js');
      const summary = await refusedAsCliError(() => backupDatabase(database, target));
      report(command, { file: target, database, ...summary }, () =>
        fields([
          ['backup', target],
          ['of', database],
          ['schema version', summary.schemaVersion],
          ['entities', summary.entities],
          ['groups', summary.groups],
        ]),
      );
    });

  const restore = new Command('restore')
    .description(
      "put the backup FILE in place of this machine's keyhold database; only while the server is stopped; the database it replaces is kept beside it",
    )
    .argument('<file>', 'a backup written by keyhold backup')
    .option(
      '--config <file>',
      'settings file naming the data directory (default: KEYHOLD_CONFIG, or ./keyhold.yaml when present; KEYHOLD_DATA_DIR overrides)',
    )
    .action(async (file: string, options: LocalOptions, command: Command) => {
      const { dataDir, database } = await databaseOf(options);
      const [{ checkBackup, restoreDatabase }, { lockDataDir }] = await Promise.all([
        import('../store/sqlite/backup.js'),
        import('../data-dir-lock.js'),
      ]);
      const result = await refusedAsCliError(async () => {
        // A file that is no keyhold backup is refused before anything is written (not even the data directory).
        checkBackup(resolve(file));
        mkdirSync(dataDir, { recursive: true, mode: 0o700 });
        // Held during the restore: refuses while a server runs on the directory, and keeps one from starting meanwhile.
        const lock = lockDataDir(dataDir, pino({ level: 'warn' }, pino.destination(2)));
        try {
          return await restoreDatabase(resolve(file), database);
        } finally {
          lock.release();
        }
      });
      report(command, { file: resolve(file), database, ...result }, () =>
        fields([
          ['restored', resolve(file)],
          ['into', database],
          ['schema version', result.schemaVersion],
          ['entities', result.entities],
          ['groups', result.groups],
          ['replaced database kept as', result.replacedKeptAs ?? '(there was none)'],
        ]),
      );
    });
  return [backup, restore];
}
