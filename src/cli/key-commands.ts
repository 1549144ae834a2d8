// keyhold keys list | rotate: the token signing keys of the server's database (GET /v1/keys,
// POST /v1/keys/rotate). Both need GLOBAL_ROOT. A rotation reaches every server on the database.
import { Command } from 'commander';
import type { SigningKeyView } from '../api/key-ring.js';
import { CommandContext, line, table } from './context.js';

export function keyCommands(): Command {
  const keys = new Command('keys').description('token signing keys: list them, rotate to a new one (see docs/deployment.md)');

  keys
    .command('list')
    .description('the signing keys: id (kid), state (current, retired, expired), origin, created, retired, tokens accepted until')
    .action(async (_options, command: Command) => {
      const ctx = new CommandContext(command);
      const result = await ctx.client.get<{ keys: SigningKeyView[] }>('/v1/keys');
      ctx.print(result, () =>
        table(
          ['KID', 'STATE', 'ORIGIN', 'CREATED', 'RETIRED', 'ACCEPTED UNTIL'],
          result.keys.map((k) => [k.kid, k.state, k.origin, k.createdAt, k.retiredAt ?? '-', k.acceptedUntil ?? '-']),
        ),
      );
    });

  keys
    .command('rotate')
    .description('make a new current signing key; tokens signed by the previous one stay valid for one token lifetime (tokenTtl)')
    .action(async (_options, command: Command) => {
      const ctx = new CommandContext(command);
      const result = await ctx.client.post<{ current: SigningKeyView }>('/v1/keys/rotate');
      ctx.print(result, () =>
        line(`new current signing key ${result.current.kid}; the previous key verifies its tokens for one token lifetime more`),
      );
    });
  return keys;
}
