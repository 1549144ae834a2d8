// keyhold system …: server status.
import { Command } from 'commander';
import { CommandContext, fields, line, table } from './context.js';

interface Status {
  version: string;
  uptimeSeconds: number;
  entities: number;
  plugins: Record<string, unknown>[];
}

export function systemCommands(): Command {
  const system = new Command('system').description('server status');
  system
    .command('status')
    .description('version, uptime, entity count and plugins of the server')
    .action(async (_options, command: Command) => {
      const ctx = new CommandContext(command);
      const status = await ctx.client.get<Status>('/v1/system/status');
      ctx.print(status, () => {
        fields([
          ['server', ctx.server],
          ['version', status.version],
          ['uptime', `${status.uptimeSeconds}s`],
          ['entities', status.entities],
        ]);
        if (status.plugins.length === 0) return line('plugins: none loaded');
        line();
        table(
          ['PLUGIN', 'STATE'],
          status.plugins.map((p) => [String(p.name ?? '?'), String(p.state ?? p.status ?? '?')]),
        );
      });
    });
  return system;
}
