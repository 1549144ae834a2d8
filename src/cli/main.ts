#!/usr/bin/env node
// `keyhold`: the server (`serve`) and the client commands that speak to its API.
// Exit codes: 0 ok, 1 refused or failed, 2 usage (including, for serve, a bad configuration or a data directory another server holds).
import { Command, CommanderError } from 'commander';
import { VERSION } from '../version.js';
import { authCommands } from './auth-commands.js';
import { CliError } from './client.js';
import { defaultServer } from './context.js';
import { entityCommands } from './entity-commands.js';
import { groupCommands } from './group-commands.js';
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
  KEYHOLD_DATA_DIR=dir        database and token signing key (default ./data)
  KEYHOLD_LOG_LEVEL=level     trace, debug, info, warn, error, fatal, silent (default info)
  KEYHOLD_BOOTSTRAP=id:secret the first administrator, on the first start only
                              (otherwise root with a random secret, printed once)`,
    )
    .action(async (options: { config?: string }) => {
      // Loaded here so that client commands do not pay for the server's modules at every run.
      const [{ installSignalHandlers, startServer }, { ConfigError }, { DataDirInUseError }] = await Promise.all([import('../server.js'), import('../config.js'), import('../data-dir-lock.js')]);
      try {
        installSignalHandlers(await startServer({ ...(options.config !== undefined && { configFile: options.config }) }));
        serving = true;
      } catch (err) {
        if (err instanceof ConfigError) throw new CliError(`bad configuration: ${err.message}`, 2);
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
  for (const command of [serveCommand(), authCommands(), entityCommands(), groupCommands(), systemCommands()]) program.addCommand(command);
  registerPluginCommands(program);
  return program;
}

/** Commands added with addCommand do not inherit settings, so they are applied to the whole tree. */
function everyCommand(command: Command): Command[] {
  return [command, ...command.commands.flatMap(everyCommand)];
}

async function main(): Promise<number> {
  const program = buildProgram();
  for (const command of everyCommand(program)) command.exitOverride();
  try {
    await program.parseAsync(process.argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof CliError) {
      process.stderr.write(program.opts<{ json: boolean }>().json && err.body ? `${JSON.stringify(err.body)}\n` : `keyhold: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`keyhold: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

main().then((code) => {
  process.exitCode = code;
  // A client command is finished: do not wait for idle keep-alive connections to time out.
  if (!serving) process.stdout.write('', () => process.exit(code));
});
