// keyhold group …: the group operations over the API.
import { Argument, Command } from 'commander';
import { EXPANSION_MODES, type Entity, type Group } from 'keyhold-plugin-sdk';
import { wholeNumber } from './arguments.js';
import { seg, usageError } from './client.js';
import { CommandContext, line } from './context.js';
import { addCaps, addDestroy, addInfo, addKv, addMeta, addSearch, GROUP, subjectPath } from './subject-commands.js';

const groupPath = (name: string, rest = '') => subjectPath(GROUP, name, rest);

export function groupCommands(): Command {
  const group = new Command('group').description('create, inspect and change groups and their members');

  group
    .command('create')
    .description('create a group (its number is assigned when not given)')
    .argument('<name>')
    .option('--number <n>', 'a specific number (1 to 2147483647)', wholeNumber(1, 2147483647))
    .option('--display-name <text>')
    .option('--managed-by <group>', 'members of this group may add and remove members')
    .action(async (name: string, options: { number?: number; displayName?: string; managedBy?: string }, command: Command) => {
      const ctx = new CommandContext(command);
      const { number } = options;
      const body = {
        name,
        ...(number !== undefined && { number }),
        ...(options.displayName !== undefined && { displayName: options.displayName }),
        ...(options.managedBy !== undefined && { managedBy: options.managedBy }),
      };
      const created = await ctx.client.post<Group>('/v1/groups', body);
      ctx.print(created, () => line(`group ${created.name} created (number ${created.number})`));
    });

  addInfo(group, GROUP);
  addSearch(group, GROUP);

  group
    .command('update')
    .description('change the display name or managing group (an empty value clears it)')
    .argument('<name>')
    .option('--display-name <text>')
    .option('--managed-by <group>')
    .action(async (name: string, options: { displayName?: string; managedBy?: string }, command: Command) => {
      const ctx = new CommandContext(command);
      if (options.displayName === undefined && options.managedBy === undefined)
        throw usageError('nothing to change: give --display-name and/or --managed-by');
      const updated = await ctx.client.patch<Group>(groupPath(name), options);
      ctx.print(updated, () => line(`group ${name} updated`));
    });

  addMeta(group, GROUP);
  addKv(group, GROUP);
  addCaps(group, GROUP, async (ctx, name) => {
    const caps = (await ctx.client.get<Group>(groupPath(name))).capabilities;
    ctx.print(caps, () => caps.forEach((c) => line(c)));
  });

  group
    .command('expansions')
    .description('list, add or remove expansions: INCLUDE adds the members of another group, EXCLUDE removes them')
    .argument('<name>')
    .addArgument(new Argument('[action]').choices(['list', 'add', 'remove']).default('list'))
    .addArgument(new Argument('[mode]').choices([...EXPANSION_MODES]))
    .argument('[group]', 'the other group')
    .action(async (name: string, action: string, mode: string | undefined, other: string | undefined, _options, command: Command) => {
      const ctx = new CommandContext(command);
      if (action === 'list') {
        const expansions = (await ctx.client.get<Group>(groupPath(name))).expansions;
        return ctx.print(expansions, () => expansions.forEach((e) => line(`${e.mode}:${e.group}`)));
      }
      if (!mode || !other) throw usageError(`expansions ${action} needs a MODE (${EXPANSION_MODES.join(' or ')}) and a GROUP`);
      const updated = await ctx.client.post<Group>(groupPath(name, '/expansions'), { action, mode, group: other });
      ctx.print(updated, () => line(`group ${name}: ${action === 'add' ? 'added' : 'removed'} ${mode}:${other}`));
    });

  for (const [commandName, method, verb] of [
    ['add-member', 'put', 'added to'],
    ['remove-member', 'delete', 'removed from'],
  ] as const) {
    group
      .command(commandName)
      .description(`${commandName === 'add-member' ? 'add an entity to' : 'remove an entity from'} a group (direct membership)`)
      .argument('<group>')
      .argument('<entity>')
      .action(async (name: string, entityId: string, _options, command: Command) => {
        const ctx = new CommandContext(command);
        const entity = await ctx.client[method]<Entity>(groupPath(name, `/members/${seg(entityId)}`));
        ctx.print(entity, () => line(`${entityId} ${verb} ${name}`));
      });
  }

  group
    .command('members')
    .description('member entity ids, expansions resolved')
    .argument('<name>')
    .action(async (name: string, _options, command: Command) => {
      const ctx = new CommandContext(command);
      const { members } = await ctx.client.get<{ members: string[] }>(groupPath(name, '/members'));
      ctx.print(members, () => members.forEach((m) => line(m)));
    });

  addDestroy(group, GROUP);
  return group;
}
