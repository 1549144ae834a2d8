// keyhold entity totp …: enrol an entity in the totp plugin (a second factor) or remove it. The
// plugin is reached through its admin actions (POST /v1/plugins/<plugin>/actions/<action>,
// GLOBAL_ROOT only); enrolment then marks the entity for the plugin (untyped metadata
// `verify.<plugin>:on`, the plugin's default claim rule), so that its logins need a code from then on.
import { Command } from 'commander';
import { verifyMarkerKey, type Entity } from 'keyhold-plugin-sdk';
import { CommandContext, line } from './context.js';
import { ENTITY, subjectPath } from './subject-commands.js';

interface Enrolment {
  entity: string;
  secret: string;
  uri: string;
  recoveryCodes: string[];
}

const actionPath = (plugin: string, action: string) => `/v1/plugins/${encodeURIComponent(plugin)}/actions/${action}`;
const PLUGIN_OPTION = ['--plugin <name>', 'the name the server knows the TOTP plugin by', 'totp'] as const;

export function totpCommands(): Command {
  const totp = new Command('totp').description('one-time codes as a second factor (the totp plugin)');

  totp
    .command('enrol')
    .description(
      'make a new TOTP secret for ID and show it once (otpauth:// URI, base32 secret, recovery codes); its logins then need a code',
    )
    .argument('<id>')
    .option(...PLUGIN_OPTION)
    .option('--force', 'enrol again: the current authenticator and recovery codes stop working')
    .action(async (id: string, options: { plugin: string; force?: boolean }, command: Command) => {
      const ctx = new CommandContext(command);
      const enrolment = await ctx.client.post<Enrolment>(actionPath(options.plugin, 'enrol'), {
        entity: id,
        force: Boolean(options.force),
      });
      await ctx.client.post<Entity>(subjectPath(ENTITY, id, '/untyped-meta'), {
        action: 'upsert',
        key: verifyMarkerKey(options.plugin),
        value: 'on',
      });
      ctx.print(enrolment, () => {
        line(`${id} is enrolled; from now on its secret is its password followed by the current code.`);
        line('Add this to an authenticator app (shown only now; keep it secret):');
        line(`  ${enrolment.uri}`);
        line(`  secret (base32): ${enrolment.secret}`);
        if (enrolment.recoveryCodes.length > 0) {
          line('Recovery codes, each usable once in place of a code (store them offline):');
          for (const code of enrolment.recoveryCodes) line(`  ${code}`);
        }
      });
    });

  totp
    .command('remove')
    .description("forget ID's TOTP secret and recovery codes and remove its mark: its logins need the password alone")
    .argument('<id>')
    .option(...PLUGIN_OPTION)
    .action(async (id: string, options: { plugin: string }, command: Command) => {
      const ctx = new CommandContext(command);
      await ctx.client.post<Entity>(subjectPath(ENTITY, id, '/untyped-meta'), {
        action: 'clear-exact',
        key: verifyMarkerKey(options.plugin),
      });
      await ctx.client.post(actionPath(options.plugin, 'remove'), { entity: id });
      ctx.done(`${id} no longer needs a TOTP code`);
    });

  return totp;
}
