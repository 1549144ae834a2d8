// The commands entities and groups share (info, search, meta, kv, caps, destroy), written once
// and parameterised by the kind of object.
import { Argument, Option, type Command } from 'commander';
import { CAPABILITIES, readUntyped, type Entity, type Group } from 'keyhold-plugin-sdk';
import { wholeNumber } from './arguments.js';
import { seg, usageError } from './client.js';
import { CommandContext, line, printEntity, printGroup, table } from './context.js';

export interface SubjectKind<S> {
  noun: 'entity' | 'group';
  /** The API collection: /v1/<collection>. */
  collection: 'entities' | 'groups';
  /** The argument naming one: "id" or "name". */
  key: 'id' | 'name';
  print(subject: S): void;
  row(subject: S): string[];
  headers: string[];
  untypedMeta(subject: S): string[];
  kv(subject: S): Record<string, { values: string[] }>;
}

export const ENTITY: SubjectKind<Entity> = {
  noun: 'entity',
  collection: 'entities',
  key: 'id',
  print: printEntity,
  headers: ['ID', 'NUMBER', 'DISPLAY NAME', 'LOCKED'],
  row: (e) => [e.id, String(e.number), e.meta.displayName, e.meta.locked ? 'yes' : ''],
  untypedMeta: (e) => e.meta.untypedMeta,
  kv: (e) => e.meta.kv,
};

export const GROUP: SubjectKind<Group> = {
  noun: 'group',
  collection: 'groups',
  key: 'name',
  print: printGroup,
  headers: ['NAME', 'NUMBER', 'DISPLAY NAME', 'MANAGED BY'],
  row: (g) => [g.name, String(g.number), g.displayName, g.managedBy],
  untypedMeta: (g) => g.untypedMeta,
  kv: (g) => g.kv,
};

export const subjectPath = (kind: SubjectKind<unknown>, name: string, rest = '') => `/v1/${kind.collection}/${seg(name)}${rest}`;

export function addInfo<S>(parent: Command, kind: SubjectKind<S>): void {
  parent
    .command('info')
    .description(`show one ${kind.noun}`)
    .argument(`<${kind.key}>`)
    .action(async (name: string, _options, command: Command) => {
      const ctx = new CommandContext(command);
      const subject = await ctx.client.get<S>(subjectPath(kind, name));
      ctx.print(subject, () => kind.print(subject));
    });
}

export function addSearch<S>(parent: Command, kind: SubjectKind<S>): void {
  parent
    .command('search')
    .description(`list ${kind.collection} whose ${kind.key} or names contain TEXT (all when omitted)`)
    .argument('[text]')
    .option('--limit <n>', 'at most this many (1-1000)', wholeNumber(1, 1000), 100)
    .option('--after <key>', `continue after this ${kind.key} (paging)`)
    .action(async (text: string | undefined, options: { limit: number; after?: string }, command: Command) => {
      const ctx = new CommandContext(command);
      const query = new URLSearchParams({
        limit: String(options.limit),
        ...(text && { text }),
        ...(options.after && { after: options.after }),
      });
      const result = await ctx.client.get<Record<string, S[]>>(`/v1/${kind.collection}?${query}`);
      const items = result[kind.collection] ?? [];
      ctx.print(items, () => table(kind.headers, items.map(kind.row)));
    });
}

export function addMeta<S>(parent: Command, kind: SubjectKind<S>): void {
  parent
    .command('meta')
    .description(`read or change untyped "key:value" metadata (no action: list all)`)
    .argument(`<${kind.key}>`)
    .addArgument(new Argument('[action]').choices(['list', 'read', 'upsert', 'clear-fuzzy', 'clear-exact']).default('list'))
    .argument('[key]')
    .argument('[value]', 'for upsert')
    .action(async (name: string, action: string, key: string | undefined, value: string | undefined, _options, command: Command) => {
      const ctx = new CommandContext(command);
      if (action === 'list' || action === 'read') {
        if (action === 'read' && !key) throw usageError('meta read needs a KEY');
        const entries = kind.untypedMeta(await ctx.client.get<S>(subjectPath(kind, name)));
        const shown = key ? readUntyped(entries, key) : entries;
        return ctx.print(shown, () => shown.forEach((e) => line(e)));
      }
      if (!key) throw usageError(`meta ${action} needs a KEY`);
      if ((action === 'upsert') !== (value !== undefined))
        throw usageError(action === 'upsert' ? 'meta upsert needs a VALUE' : `meta ${action} takes no VALUE`);
      const updated = await ctx.client.post<S>(subjectPath(kind, name, '/untyped-meta'), {
        action,
        key,
        ...(value !== undefined && { value }),
      });
      ctx.print(updated, () => kind.untypedMeta(updated).forEach((e) => line(e)));
    });
}

export function addKv<S>(parent: Command, kind: SubjectKind<S>): void {
  parent
    .command('kv')
    .description('read or change typed key/value entries (no action: list all)')
    .argument(`<${kind.key}>`)
    .addArgument(new Argument('[action]').choices(['list', 'get', 'add', 'replace', 'delete']).default('list'))
    .argument('[key]')
    .argument('[values...]', 'for add and replace')
    .action(async (name: string, action: string, key: string | undefined, values: string[], _options, command: Command) => {
      const ctx = new CommandContext(command);
      if (action === 'list') {
        const kv = kind.kv(await ctx.client.get<S>(subjectPath(kind, name)));
        return ctx.print(kv, () =>
          table(
            ['KEY', 'VALUES'],
            Object.entries(kv).map(([k, v]) => [k, v.values.join(', ')]),
          ),
        );
      }
      if (!key) throw usageError(`kv ${action} needs a KEY`);
      if (action === 'get') {
        const result = await ctx.client.get<{ values: string[] }>(subjectPath(kind, name, `/kv/${seg(key)}`));
        return ctx.print(result, () => result.values.forEach((v) => line(v)));
      }
      if ((action === 'delete') !== (values.length === 0))
        throw usageError(action === 'delete' ? 'kv delete takes no VALUES' : `kv ${action} needs at least one VALUE`);
      const updated = await ctx.client.post<S>(subjectPath(kind, name, '/kv'), { action, key, ...(values.length > 0 && { values }) });
      ctx.print(updated, () => line(`${kind.noun} ${name}: kv ${key} ${action === 'delete' ? 'deleted' : 'set'}`));
    });
}

export function addCaps<S>(parent: Command, kind: SubjectKind<S>, list: (ctx: CommandContext, name: string) => Promise<void>): void {
  parent
    .command('caps')
    .description('list, add or remove capabilities (adding and removing needs GLOBAL_ROOT)')
    .argument(`<${kind.key}>`)
    .addArgument(new Argument('[action]').choices(['list', 'add', 'remove']).default('list'))
    .addArgument(new Argument('[capability]').choices([...CAPABILITIES]))
    .action(async (name: string, action: string, capability: string | undefined, _options, command: Command) => {
      const ctx = new CommandContext(command);
      if (action === 'list') return list(ctx, name);
      if (!capability) throw usageError(`caps ${action} needs a CAPABILITY (${CAPABILITIES.join(', ')})`);
      const updated = await ctx.client.post<S>(subjectPath(kind, name, '/capabilities'), { action, value: capability });
      ctx.print(updated, () => line(`${kind.noun} ${name}: ${action === 'add' ? 'added' : 'removed'} ${capability}`));
    });
}

export function addDestroy(parent: Command, kind: SubjectKind<unknown>): void {
  parent
    .command('destroy')
    .description(`destroy ${kind.noun === 'entity' ? 'an entity' : 'a group'} (cannot be undone)`)
    .argument(`<${kind.key}>`)
    .action(async (name: string, _options, command: Command) => {
      const ctx = new CommandContext(command);
      await ctx.client.delete(subjectPath(kind, name));
      ctx.done(`${kind.noun} ${name} destroyed`);
    });
}

/** Adds one --flag per field (e.g. displayName → --display-name <value>). */
export function addFieldOptions(command: Command, fieldNames: readonly string[]): Command {
  for (const field of fieldNames) {
    const words = field.replace(/[A-Z]/g, (c) => ` ${c.toLowerCase()}`);
    command.addOption(new Option(`--${words.replaceAll(' ', '-')} <value>`, `the ${words} field`));
  }
  return command;
}

/** The subset of `options` that are fields. */
export function pickFields(options: Record<string, unknown>, fieldNames: readonly string[]): Record<string, string> {
  return Object.fromEntries(fieldNames.filter((f) => typeof options[f] === 'string').map((f) => [f, options[f] as string]));
}
