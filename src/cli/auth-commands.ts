// keyhold auth …: log in (the token is saved per server), check credentials, show the token,
// change your own secret, log out.
import { Command } from 'commander';
import { CliError, usageError } from './client.js';
import { CommandContext, fields, line } from './context.js';
import { credentialsPath, forgetLogin, loadLogin } from './credentials.js';
import { readSecrets, SECRET_STDIN_OPTION } from './secret-input.js';

interface Claims {
  sub: string;
  capabilities: string[];
  expiresAt: string;
  issuedAt: string;
}

/** The server's answers to a token it no longer accepts: logging out with it has nothing left to revoke. */
const TOKEN_NO_LONGER_VALID = ['KH_ERR_UNAUTHENTICATED', 'KH_ERR_TOKEN_EXPIRED', 'KH_ERR_TOKEN_REVOKED'];

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
        line(
          `logged in to ${ctx.server} as ${result.id} until ${result.expiresAt}${result.capabilities.length ? ` (${result.capabilities.join(', ')})` : ''}`,
        ),
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
      const ctx = new CommandContext(command, { renewLogin: false });
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
      const [oldSecret, newSecret] = await readSecrets(
        [{ label: `current secret for ${entity}` }, { label: 'new secret', confirm: true }],
        Boolean(options.secretStdin),
      );
      await ctx.client.post('/v1/auth/change-secret', { id: entity, oldSecret, newSecret });
      ctx.done(`secret of ${entity} changed; every token of ${entity} was revoked, so log in again`);
    });

  auth
    .command('logout')
    .description('end every session of the logged-in entity on this server (all its tokens are revoked), then forget the saved token')
    .action(async (_options, command: Command) => {
      const ctx = new CommandContext(command, { renewLogin: false });
      const saved = loadLogin(ctx.server);
      if (!(process.env.KEYHOLD_TOKEN || saved))
        return ctx.done(`no saved login for ${ctx.server} (in ${credentialsPath()})`, { ok: true, revoked: false, forgotten: false });
      const refusal = await ctx.client.post('/v1/auth/logout').then(
        () => undefined,
        (err: unknown) => {
          if (err instanceof CliError) return err;
          throw err;
        },
      );
      // Forgotten in every case: a token the server could not revoke is still no longer wanted here.
      const forgotten = forgetLogin(ctx.server);
      if (!refusal)
        return ctx.done(`logged out of ${ctx.server}: every session of ${saved?.id ?? 'the entity'} has ended`, {
          ok: true,
          revoked: true,
          forgotten,
        });
      if (refusal.body && TOKEN_NO_LONGER_VALID.includes(refusal.body.code)) {
        return ctx.done(
          `logged out of ${ctx.server}: the token was no longer valid (${refusal.body.code}), so there was nothing to revoke with it; to end other sessions, log in and log out again`,
          { ok: true, revoked: false, forgotten },
        );
      }
      const until = saved ? `until ${saved.expiresAt}` : 'until it expires';
      throw new CliError(
        `the server did not revoke the token (${refusal.message}): it stays valid ${until}${forgotten ? '; the saved login was forgotten anyway' : ''}`,
      );
    });

  return auth;
}
