// keyhold events list | show | retry | skip: the committed-event outbox of the server (GET
// /v1/events, /v1/events/:seq; POST …/retry and …/skip for dead letters). All need GLOBAL_ROOT.
import { Command } from 'commander';
import type { EventView, SubscriberStatus } from '../events/outbox.js';
import type { DeadLetter } from '../store/outbox.js';
import { usageError } from './client.js';
import { CommandContext, fields, line, table } from './context.js';

function seqOf(text: string): number {
  if (!/^[0-9]{1,15}$/.test(text)) throw usageError(`SEQ must be an event number (from keyhold events list), got ${JSON.stringify(text)}`);
  return Number(text);
}

function deliveryTable(subscribers: readonly SubscriberStatus[]): void {
  if (subscribers.length === 0) return line('no loaded plugin has committed hooks');
  table(
    ['PLUGIN', 'CURSOR', 'PENDING', 'LAG', 'DEAD LETTERS', 'RETRYING', 'DELIVERED BY'],
    subscribers.map((s) => [
      s.plugin,
      String(s.cursor),
      String(s.pending),
      `${s.lagSeconds.toFixed(1)}s`,
      String(s.deadLetters),
      s.failures > 0 ? `attempt ${s.failures + 1}: ${s.lastError ?? ''}` : '-',
      // The delivery lease's holder: this server, another one on the database, or none yet.
      s.leaseOwner === null ? '-' : `${s.leaseOwner}${s.leaseHeld ? ' (this server)' : ''}`,
    ]),
  );
}

function deadLetterLine(letter: DeadLetter): string {
  return `${letter.plugin} (${letter.attempts} attempts, last ${letter.failedAt}: ${letter.lastError})`;
}

/** retry and skip: the same shape, a different verb. */
function deadLetterCommand(events: Command, verb: 'retry' | 'skip', description: string, done: (letter: DeadLetter) => string): void {
  events
    .command(verb)
    .description(description)
    .argument('<seq>', 'the event number')
    .option('--plugin <name>', 'whose dead letter (needed only when several plugins have this event as a dead letter)')
    .action(async (seq: string, options: { plugin?: string }, command: Command) => {
      const ctx = new CommandContext(command);
      const result = await ctx.client.post<Record<string, DeadLetter>>(
        `/v1/events/${seqOf(seq)}/${verb}`,
        options.plugin === undefined ? {} : { plugin: options.plugin },
      );
      const letter = result[verb === 'retry' ? 'retried' : 'skipped']!;
      ctx.print(result, () => line(done(letter)));
    });
}

export function eventCommands(): Command {
  const events = new Command('events').description(
    'committed events: their delivery to plugins (pending, lag) and dead letters (retry, skip)',
  );

  events
    .command('list')
    .description(
      "events in commit order with the plugins still to get them and their dead letters, then each plugin's delivery: cursor, pending, lag, dead letters",
    )
    .option('--dead', 'only dead letters')
    .option('--plugin <name>', "only the events at this plugin's committed points (with --dead: only its dead letters)")
    .option('--after <seq>', 'events after this number, for paging')
    .option('--limit <n>', 'at most this many events (1 to 1000, default 100)')
    .action(async (options: { dead?: boolean; plugin?: string; after?: string; limit?: string }, command: Command) => {
      const ctx = new CommandContext(command);
      const query = new URLSearchParams();
      if (options.dead) query.set('dead', 'true');
      if (options.plugin !== undefined) query.set('plugin', options.plugin);
      if (options.after !== undefined) query.set('after', String(seqOf(options.after)));
      if (options.limit !== undefined) query.set('limit', options.limit);
      const result = await ctx.client.get<{ events: EventView[]; subscribers: SubscriberStatus[] }>(
        `/v1/events${query.size > 0 ? `?${query}` : ''}`,
      );
      ctx.print(result, () => {
        if (result.events.length === 0) line(options.dead ? 'no dead letters' : 'no events');
        else {
          table(
            ['SEQ', 'AT', 'POINT', 'SUBJECT', 'REQUEST', 'PENDING FOR', 'DEAD LETTER OF'],
            result.events.map((e) => [
              String(e.seq),
              e.at,
              e.point,
              `${e.subjectKind} ${e.subjectKey}`,
              e.requestId,
              e.pendingFor.join(',') || '-',
              e.deadLetters.map((l) => l.plugin).join(',') || '-',
            ]),
          );
        }
        line();
        deliveryTable(result.subscribers);
      });
    });

  events
    .command('show')
    .description('one event: what changed (before and after), who asked, and its delivery')
    .argument('<seq>', 'the event number')
    .action(async (seq: string, _options, command: Command) => {
      const ctx = new CommandContext(command);
      const event = await ctx.client.get<EventView>(`/v1/events/${seqOf(seq)}`);
      ctx.print(event, () => {
        fields([
          ['seq', event.seq],
          ['at', event.at],
          ['point', event.point],
          ['operation', event.operation],
          ['subject', `${event.subjectKind} ${event.subjectKey}`],
          ['request id', event.requestId],
          ['caller', event.caller ?? '(the server)'],
          ['source', event.source ?? '(not recorded)'],
          ['client address', event.clientAddress ?? ''],
          ['user agent', event.userAgent ?? ''],
          ['client', event.client ?? ''],
          ['request', JSON.stringify(event.request)],
          ['pending for', event.pendingFor],
          ['dead letter of', event.deadLetters.map(deadLetterLine)],
        ]);
        line(`before: ${JSON.stringify(event.before)}`);
        line(`after:  ${JSON.stringify(event.after)}`);
      });
    });

  deadLetterCommand(
    events,
    'retry',
    'deliver a dead letter to its plugin once more, now (exit 1 when it fails again: it stays a dead letter)',
    (l) => `event ${l.seq} delivered to ${l.plugin}`,
  );
  deadLetterCommand(events, 'skip', 'drop a dead letter: its plugin never gets the event', (l) => `event ${l.seq} skipped for ${l.plugin}`);
  return events;
}
