#!/usr/bin/env node
// `keyhold`: the server (`serve`) and the client commands that speak to its API.
// Exit codes: 0 ok, 1 refused or failed, 2 usage (including, for serve, a bad configuration or a data directory another server holds).
import { Command, CommanderError } from 'commander';
import { VERSION } from '../version.js';
import { authCommands } from './auth-commands.js';
import { backupCommands } from './backup-commands.js';
import { CliError } from './client.js';
import { completionCommands } from './completion-commands.js';
import { defaultServer } from './context.js';
import { entityCommands } from './entity-commands.js';
import { eventCommands } from './event-commands.js';
import { groupCommands } from './group-commands.js';
import { keyCommands } from './key-commands.js';
import { registerPluginCommands } from './plugin-commands.js';
import { systemCommands } from './system-commands.js';

/** Set once `serve` has started: the process then lives until a signal stops the server. */
let serving = false;

function serveCommand(): Command {
  return new Command('serve')
    .description('run the keyhold server (settings: keyhold.yaml, then KEYHOLD_* variables; every one is listed in docs/configuration.md)')
    .option('--config <file>', 'settings file (default: KEYHOLD_CONFIG, or ./keyhold.yaml when present)')
    .addHelpText(
      'after',
      `
Often used environment variables:
  KEYHOLD_LISTEN=host:port    where to listen (default 127.0.0.1:8470)
  KEYHOLD_DATA_DIR=dir        the database, with the token signing keys (default ./data)
  KEYHOLD_LOG_LEVEL=level     trace, debug, info, warn, error, fatal, silent (default info)
  KEYHOLD_BOOTSTRAP=id:secret the first administrator, on the first start only
                              (otherwise root with a random secret, printed once)
  KEYHOLD_BOOTSTRAP_FILE=file the same from a file only the server's user can read
                              (mode 0600); better: see docs/security.md`,
    )
    .action(async (options: { config?: string }) => {
      // Loaded here so that client commands do not pay for the server's modules at every run.
      const [{ installSignalHandlers, startServer }, { ConfigError }, { PluginLoadError }, { DataDirInUseError }] = await Promise.all([
        import('../server.js'),
        import('../config.js'),
        import('../host/host.js'),
        import('../data-dir-lock.js'),
      ]);
      try {
        installSignalHandlers(await startServer({ ...(options.config !== undefined && { configFile: options.config }) }));
        serving = true;
      } catch (err) {
        // A plugin that cannot load (refused config, bad file, protocol mismatch) is a deployment to fix, like a bad setting.
        if (err instanceof ConfigError || err instanceof PluginLoadError) throw new CliError(`bad configuration: ${err.message}`, 2);
        // Like a bad setting, another server on the same data directory is fixed by changing how this one is started.
        if (err instanceof DataDirInUseError) throw new CliError(err.message, 2);
        throw err;
      }
    });
}

function buildProgram(): Command {
  const program = new Command('keyhold')
    .description('keyhold: a small network identity server (entities, groups, secrets, tokens) with out-of-process plugins')
    .version(VERSION)
    .option('--server <url>', 'the keyhold server (env KEYHOLD_SERVER)', defaultServer())
    .option('--json', 'machine-readable output', false)
    .showHelpAfterError('(add --help for usage)');
  for (const command of [
    serveCommand(),
    authCommands(),
    entityCommands(),
    groupCommands(),
    systemCommands(),
    eventCommands(),
    keyCommands(),
    ...backupCommands(),
    ...completionCommands(),
  ])
    program.addCommand(command);
  registerPluginCommands(program);
  return program;
}

/** Commands added with addCommand do not inherit settings, so they are applied to the whole tree. */
function everyCommand(command: Command): Command[] {
  return [command, ...command.commands.flatMap(everyCommand)];
}

/**
 * An error as --json prints it: the server's error body when the server refused, otherwise the
 * same shape with a code of the CLI's own (KH_CLI_USAGE for exit 2, KH_CLI_FAILED for exit 1).
 */
function jsonError(message: string, exitCode: number, body?: CliError['body']): string {
  return `${JSON.stringify(body ?? { code: exitCode === 2 ? 'KH_CLI_USAGE' : 'KH_CLI_FAILED', message })}\n`;
}

async function main(): Promise<number> {
  const program = buildProgram();
  // Read before parsing, so that commander's own usage errors honour it too.
  const json = process.argv.includes('--json');
  for (const command of everyCommand(program)) {
    command.exitOverride().configureHelp({ showGlobalOptions: true });
    if (json) command.configureOutput({ outputError: (text, write) => write(jsonError(text.trim().replace(/^error: /, ''), 2)) });
  }
  const report = (message: string, exitCode: number, body?: CliError['body']) => {
    process.stderr.write(json ? jsonError(message, exitCode, body) : `keyhold: ${message}\n`);
    return exitCode;
  };
  try {
    await program.parseAsync(process.argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof CliError) return report(err.message, err.exitCode, err.body);
    return report(err instanceof Error ? err.message : String(err), 1);
  }
}

main().then((code) => {
  process.exitCode = code;
  // A client command is finished: do not wait for idle keep-alive connections to time out.
  if (!serving) process.stdout.write('', () => process.exit(code));
});
