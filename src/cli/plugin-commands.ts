// keyhold plugin new | verify | list | reload | state. `new` and `verify` run locally (a project on
// disk; discovery and the handshake, no server); `list`, `reload` and `state` ask the running server
// (GET /v1/plugins, POST /v1/plugins/reload, /v1/plugins/:name/state).
import { Argument, Command } from 'commander';
import type { StateEntry } from 'keyhold-plugin-sdk';
import type { ReloadResult } from '../host/host.js';
import type { PluginSettings } from '../host/settings.js';
import type { PluginStatus } from '../host/supervisor.js';
import { CliError, seg, usageError } from './client.js';
import { CommandContext, line, table } from './context.js';

export interface PluginCommandDeps {
  /**
   * The plugin settings `verify` applies (each plugin's config and sha256 pin). Default: the
   * `plugins:` section of the server's settings file (--config, KEYHOLD_CONFIG or ./keyhold.yaml).
   */
  loadPluginSettings?: (configFile: string | undefined) => PluginSettings | Promise<PluginSettings>;
}

async function serverPluginSettings(configFile: string | undefined): Promise<PluginSettings> {
  const { loadConfig } = await import('../config.js');
  return loadConfig(configFile === undefined ? {} : { file: configFile }).plugins;
}

function statusTable(plugins: readonly PluginStatus[]): void {
  if (plugins.length === 0) return line('no plugins loaded');
  table(
    ['PLUGIN', 'STATE', 'PID', 'VERSION', 'ORDER', 'MODE', 'FAILURE', 'RESTARTS', 'HOOKS', 'VERIFIES', 'ACTIONS', 'LAST ERROR'],
    plugins.map((p) => [
      p.name,
      p.state,
      String(p.pid ?? '-'),
      p.version ?? '-',
      String(p.order),
      p.mode,
      p.failureMode,
      String(p.restarts),
      p.hooks.join(',') || '-',
      p.verify ? `${p.verify.mode}: ${p.verify.claims.join(',')}` : '-',
      p.actions.join(',') || '-',
      p.lastError ?? '',
    ]),
  );
}

/** Adds new, verify, list, reload and state under `keyhold plugin` (creating that command unless it exists). */
export function registerPluginCommands(program: Command, deps: PluginCommandDeps = {}): Command {
  const plugin =
    program.commands.find((c) => c.name() === 'plugin') ??
    program.command('plugin').description('plugins: check files before installing them; list and reload those of the server');

  plugin
    .command('new')
    .description('write a ready TypeScript plugin project (one hook, a test, a build to one executable file)')
    .argument('<name>', 'the plugin name: lower-case letters, digits and dashes')
    .option('--dir <dir>', 'where to write the project (default: ./<name>)')
    .option('--sdk <spec>', "the project's dependency on keyhold-plugin-sdk, as npm takes it (default: ^ and this keyhold's SDK version)")
    .action(async (name: string, options: { dir?: string; sdk?: string }, command: Command) => {
      const ctx = new CommandContext(command);
      const { scaffoldPlugin } = await import('./plugin-scaffold.js');
      const dir = options.dir ?? name;
      const written = await scaffoldPlugin(dir, name, options.sdk === undefined ? {} : { sdk: options.sdk }).catch((err: Error) => {
        throw new CliError(err.message, 2);
      });
      ctx.print({ dir, files: written }, () => {
        line(`wrote plugin project "${name}" in ${dir}:`);
        for (const file of written) line(`  ${file}`);
        line(
          `next: cd ${dir} && npm install && npm test, then link dist/${name}.js into the server's plugins/ as ${name} (see its README;`,
        );
        line(
          `without a registry that has keyhold-plugin-sdk, first npm install the SDK packed from keyhold: npm pack ./sdk in the keyhold checkout)`,
        );
      });
    });

  plugin
    .command('verify')
    .description(
      'start each plugin, do the handshake and report: ok with name, version and hooks, or why it cannot load (exit 1 if any fails)',
    )
    .argument('[paths...]', 'plugin directories (scanned) or files (default: the plugin directory or list of the settings)')
    .option('--config <file>', 'settings file whose plugins: section gives each plugin its config and sha256 pin')
    .action(async (paths: string[], options: { config?: string }, command: Command) => {
      const ctx = new CommandContext(command);
      const settings = await (deps.loadPluginSettings ?? serverPluginSettings)(options.config);
      const { verifyPlugins } = await import('../host/verify.js');
      const results = await verifyPlugins(paths.length > 0 ? paths : (settings.list ?? [settings.directory]), settings);
      ctx.print(results, () => {
        if (results.length === 0) line('no plugins found');
        for (const r of results) {
          line(
            r.ok
              ? `ok    ${r.name} ${r.version}  hooks: ${r.hooks.join(', ') || 'none'}${r.selfChecked ? '  own check passed' : ''}  (${r.path})`
              : `FAIL  ${r.name}  ${r.reason}  (${r.path})`,
          );
        }
      });
      const failed = results.filter((r) => !r.ok).length;
      if (failed > 0) throw new CliError(`${failed} of ${results.length} plugin(s) cannot be loaded`);
    });

  plugin
    .command('list')
    .description(
      "the server's plugins: state (starting, ready, restarting, failed), pid, version, order, failure mode, restarts, hooks, whether it verifies secrets (mode: claims), its admin actions, last error",
    )
    .action(async (_options, command: Command) => {
      const ctx = new CommandContext(command);
      const { plugins } = await ctx.client.get<{ plugins: PluginStatus[] }>('/v1/plugins');
      ctx.print(plugins, () => statusTable(plugins));
    });

  plugin
    .command('reload')
    .description(
      'start the plugin set again on the server, with the plugins: settings read again from its settings file; if the file is not valid or any plugin fails to load, the old set keeps serving and the reasons are printed (exit 1)',
    )
    .action(async (_options, command: Command) => {
      const ctx = new CommandContext(command);
      const result = await ctx.client.post<ReloadResult>('/v1/plugins/reload');
      if (!result.swapped)
        throw new CliError(
          `plugin reload failed, the previous plugins keep serving: ${result.failures.map((f) => `${f.name}: ${f.reason}`).join('; ')}`,
        );
      ctx.print(result, () => {
        line(`plugins reloaded: ${result.plugins.length} plugin(s)`);
        statusTable(result.plugins);
      });
    });

  plugin
    .command('state')
    .description(
      "a plugin's state kept by the server (GLOBAL_ROOT): list [PREFIX] its live keys, get KEY, delete KEY (fail2lock: `delete ID` unlocks that entity)",
    )
    .argument('<name>', 'the plugin (its file name without the extension)')
    .addArgument(new Argument('<action>').choices(['list', 'get', 'delete']))
    .argument('[key]', 'list: the prefix keys start with (default: all); get, delete: the key')
    .option('--after <key>', 'list: the keys after this one (to page on)')
    .option('--limit <n>', 'list: at most this many (1 to 1000, default 100)')
    .action(
      async (name: string, action: string, key: string | undefined, options: { after?: string; limit?: string }, command: Command) => {
        const ctx = new CommandContext(command);
        const base = `/v1/plugins/${seg(name)}/state`;
        if (action === 'list') {
          const query = new URLSearchParams({
            ...(key !== undefined && { prefix: key }),
            ...(options.after !== undefined && { after: options.after }),
            ...(options.limit !== undefined && { limit: options.limit }),
          }).toString();
          const listed = await ctx.client.get<{ entries: StateEntry[]; more: boolean }>(query ? `${base}?${query}` : base);
          return ctx.print(listed, () => {
            if (listed.entries.length === 0) return line(`plugin ${name} has no live state keys${key ? ` starting with "${key}"` : ''}`);
            table(
              ['KEY', 'VALUE', 'VERSION', 'EXPIRES'],
              listed.entries.map((e) => [
                e.key,
                e.value,
                String(e.version),
                e.expiresAt === null ? 'never' : new Date(e.expiresAt).toISOString(),
              ]),
            );
            if (listed.more) line(`(more: --after ${listed.entries.at(-1)!.key})`);
          });
        }
        if (key === undefined) throw usageError(`plugin state ${action} needs a KEY`);
        if (action === 'get') {
          const entry = await ctx.client.get<StateEntry>(`${base}/${seg(key)}`);
          return ctx.print(entry, () => line(entry.value));
        }
        await ctx.client.delete(`${base}/${seg(key)}`);
        ctx.print({ deleted: key }, () => line(`plugin ${name}: state key ${key} deleted`));
      },
    );

  return plugin;
}
