// keyhold auth …: log in (the token is saved per server), check credentials, show the token,
// change your own secret, log out.
import { Command } from 'commander';
import { usageError } from './client.js';
import { CommandContext, fields, line } from './context.js';
import { credentialsPath, forgetLogin, loadLogin } from './credentials.js';
import { readSecrets, SECRET_STDIN_OPTION } from './secret-input.js';

interface Claims {
  sub: string;
  capabilities: string[];
  expiresAt: string;
  issuedAt: string;
}

export function authCommands(): Command {
  const auth = new Command('auth').description('log in, check credentials, manage your token and secret');

  auth
    .command('login')
    .description('get a token for ID and save it for this server (until it expires)')
    .argument('<id>')
    .option(...SECRET_STDIN_OPTION)
    .action(async (id: string, options: { secretStdin?: boolean }, command: Command) => {
      const ctx = new CommandContext(command);
      const [secret] = await readSecrets([{ label: `secret for ${id}` }], Boolean(options.secretStdin));
      const result = await ctx.login(id, secret!);
      ctx.print({ id: result.id, expiresAt: result.expiresAt, capabilities: result.capabilities }, () =>
        line(`logged in to ${ctx.server} as ${result.id} until ${result.expiresAt}${result.capabilities.length ? ` (${result.capabilities.join(', ')})` : ''}`),
      );
    });

  auth
    .command('check')
    .description('check an id and secret (exit 0 when right, 1 when refused); no token is saved')
    .argument('<id>')
    .option(...SECRET_STDIN_OPTION)
    .action(async (id: string, options: { secretStdin?: boolean }, command: Command) => {
      const ctx = new CommandContext(command);
      const [secret] = await readSecrets([{ label: `secret for ${id}` }], Boolean(options.secretStdin));
      const result = await ctx.client.post<{ ok: boolean; id: string }>('/v1/auth/check', { id, secret });
      ctx.done(`ok: ${result.id} authenticated`, result);
    });

  auth
    .command('token')
    .description('show what the saved token says (validated by the server); --raw prints the token itself')
    .option('--raw', 'print the token (for Authorization: Bearer …)')
    .action(async (options: { raw?: boolean }, command: Command) => {
      const ctx = new CommandContext(command);
      const saved = loadLogin(ctx.server);
      const token = process.env.KEYHOLD_TOKEN || saved?.token;
      if (!token) throw usageError(`no saved login for ${ctx.server}; run keyhold auth login ID`);
      const claims = await ctx.client.post<Claims>('/v1/auth/validate', { token });
      if (options.raw) return line(token);
      // Named `id` as `auth login` names it.
      ctx.print({ id: claims.sub, capabilities: claims.capabilities, issuedAt: claims.issuedAt, expiresAt: claims.expiresAt }, () =>
        fields([
          ['id', claims.sub],
          ['capabilities', claims.capabilities],
          ['issued', claims.issuedAt],
          ['expires', claims.expiresAt],
        ]),
      );
    });

  auth
    .command('change-secret')
    .description('change your own secret by giving the old one (with --secret-stdin: old on line 1, new on line 2)')
    .argument('[id]', 'the entity (default: the one logged in)')
    .option(...SECRET_STDIN_OPTION)
    .action(async (id: string | undefined, options: { secretStdin?: boolean }, command: Command) => {
      const ctx = new CommandContext(command);
      const entity = id ?? loadLogin(ctx.server)?.id;
      if (!entity) throw usageError('which entity? give its ID or log in first');
      const [oldSecret, newSecret] = await readSecrets([{ label: `current secret for ${entity}` }, { label: 'new secret', confirm: true }], Boolean(options.secretStdin));
      await ctx.client.post('/v1/auth/change-secret', { id: entity, oldSecret, newSecret });
      ctx.done(`secret of ${entity} changed`);
    });

  auth
    .command('logout')
    .description('forget the saved token for this server')
    .action(async (_options, command: Command) => {
      const ctx = new CommandContext(command);
      const forgotten = forgetLogin(ctx.server);
      ctx.done(forgotten ? `logged out of ${ctx.server}` : `no saved login for ${ctx.server} (in ${credentialsPath()})`, { ok: true, forgotten });
    });

  return auth;
}
