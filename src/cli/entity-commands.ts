// keyhold entity …: the entity operations over the API.
import { Argument, Command } from 'commander';
import type { Entity } from 'keyhold-plugin-sdk';
import { ENTITY_META_FIELDS } from '../identity/operations.js';
import { wholeNumber } from './arguments.js';
import { usageError } from './client.js';
import { CommandContext, line, table } from './context.js';
import { readSecrets, SECRET_STDIN_OPTION } from './secret-input.js';
import { totpCommands } from './totp-commands.js';
import {
  addCaps,
  addDestroy,
  addFieldOptions,
  addInfo,
  addKv,
  addMeta,
  addSearch,
  ENTITY,
  pickFields,
  subjectPath,
} from './subject-commands.js';

const entityPath = (id: string, rest = '') => subjectPath(ENTITY, id, rest);

export function entityCommands(): Command {
  const entity = new Command('entity').description('create, inspect and change entities');

  addFieldOptions(
    entity
      .command('create')
      .description('create an entity (its number is assigned when not given)')
      .argument('<id>')
      .option('--number <n>', 'a specific number (1 to 2147483647)', wholeNumber(1, 2147483647))
      .option('--with-secret', 'prompt for an initial secret')
      .option(...SECRET_STDIN_OPTION),
    ENTITY_META_FIELDS,
  ).action(async (id: string, options: Record<string, unknown>, command: Command) => {
    const ctx = new CommandContext(command);
    const number = options.number as number | undefined;
    const wantsSecret = Boolean(options.withSecret || options.secretStdin);
    const [secret] = wantsSecret ? await readSecrets([{ label: `secret for ${id}`, confirm: true }], Boolean(options.secretStdin)) : [];
    const meta = pickFields(options, ENTITY_META_FIELDS);
    const created = await ctx.client.post<Entity>('/v1/entities', {
      id,
      ...(number !== undefined && { number }),
      ...(secret && { secret }),
      ...(Object.keys(meta).length > 0 && { meta }),
    });
    ctx.print(created, () => line(`entity ${created.id} created (number ${created.number})`));
  });

  addInfo(entity, ENTITY);
  addSearch(entity, ENTITY);

  addFieldOptions(
    entity.command('update').description('change typed metadata fields (an empty value clears one)').argument('<id>'),
    ENTITY_META_FIELDS,
  ).action(async (id: string, options: Record<string, unknown>, command: Command) => {
    const ctx = new CommandContext(command);
    const patch = pickFields(options, ENTITY_META_FIELDS);
    if (Object.keys(patch).length === 0) throw usageError('nothing to change: give at least one field option (see --help)');
    const updated = await ctx.client.patch<Entity>(entityPath(id), patch);
    ctx.print(updated, () => line(`entity ${id} updated`));
  });

  addMeta(entity, ENTITY);
  addKv(entity, ENTITY);

  entity
    .command('keys')
    .description('list, add or remove public keys (e.g. SSH keys)')
    .argument('<id>')
    .addArgument(new Argument('[action]').choices(['list', 'add', 'remove']).default('list'))
    .argument('[key]', 'the whole key line, quoted')
    .action(async (id: string, action: string, key: string | undefined, _options, command: Command) => {
      const ctx = new CommandContext(command);
      if (action === 'list') {
        const keys = (await ctx.client.get<Entity>(entityPath(id))).meta.keys;
        return ctx.print(keys, () => keys.forEach((k) => line(k)));
      }
      if (!key) throw usageError(`keys ${action} needs the KEY`);
      const updated = await ctx.client.post<Entity>(entityPath(id, '/keys'), { action, value: key });
      ctx.print(updated, () => line(`entity ${id}: key ${action === 'add' ? 'added' : 'removed'}`));
    });

  addCaps(entity, ENTITY, async (ctx, id) => {
    const caps = await ctx.client.get<{ direct: string[]; effective: string[] }>(entityPath(id, '/capabilities'));
    ctx.print(caps, () =>
      table(
        ['CAPABILITY', 'HOW'],
        caps.effective.map((c) => [c, caps.direct.includes(c) ? 'direct' : 'through a group']),
      ),
    );
  });

  for (const [name, description] of [
    ['lock', 'lock an entity: authentication is refused until it is unlocked'],
    ['unlock', 'unlock an entity'],
  ] as const) {
    entity
      .command(name)
      .description(description)
      .argument('<id>')
      .action(async (id: string, _options, command: Command) => {
        const ctx = new CommandContext(command);
        const updated = await ctx.client.post<Entity>(entityPath(id, `/${name}`));
        ctx.print(updated, () => line(`entity ${id} ${name}ed`));
      });
  }

  addDestroy(entity, ENTITY);

  entity
    .command('set-secret')
    .description("set an entity's secret (needs CHANGE_ENTITY_SECRET; to change your own, use auth change-secret)")
    .argument('<id>')
    .option(...SECRET_STDIN_OPTION)
    .action(async (id: string, options: { secretStdin?: boolean }, command: Command) => {
      const ctx = new CommandContext(command);
      const [secret] = await readSecrets([{ label: `new secret for ${id}`, confirm: true }], Boolean(options.secretStdin));
      await ctx.client.put(entityPath(id, '/secret'), { secret });
      ctx.done(`secret of ${id} set`);
    });

  entity
    .command('groups')
    .description('groups the entity is in')
    .argument('<id>')
    .option('--indirect', 'also groups reached through expansions')
    .action(async (id: string, options: { indirect?: boolean }, command: Command) => {
      const ctx = new CommandContext(command);
      const { groups } = await ctx.client.get<{ groups: string[] }>(
        entityPath(id, `/groups?indirect=${options.indirect ? 'true' : 'false'}`),
      );
      ctx.print(groups, () => groups.forEach((g) => line(g)));
    });

  entity.addCommand(totpCommands());

  return entity;
}
