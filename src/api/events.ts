// /v1/events: the committed-event outbox for operators: events and their delivery status
// (pending, lag, dead letters), and what to do with a dead letter (retry it now, or skip it).
// Every route needs GLOBAL_ROOT: events carry whole entities and groups, including past states
// and destroyed objects that no other read shows any more.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { MAX_NAME_LENGTH } from '../identity/identity.js';
import { KeyholdError } from '../errors.js';
import type { Outbox } from '../events/outbox.js';
import type { Access } from './access.js';
import * as s from './schemas.js';

/** What the API needs from the outbox. */
export type EventControl = Pick<Outbox, 'list' | 'show' | 'retry' | 'skip'>;

const seqText = { type: 'string', pattern: '^[0-9]{1,15}$' } as const;
const plugin = { type: 'string', minLength: 1, maxLength: MAX_NAME_LENGTH } as const;
const object = (properties: Record<string, unknown>, required: string[] = []) =>
  ({ type: 'object', properties, required, additionalProperties: false }) as const;

const listQuery = object({
  after: { ...seqText, description: 'events after this seq (default 0), for paging' },
  limit: { type: 'string', pattern: '^[0-9]{1,4}$', description: 'at most this many events (1 to 1000, default 100)' },
  dead: { type: 'string', enum: ['true', 'false'], description: 'only dead letters' },
  plugin: { ...plugin, description: "only the events at this plugin's committed points (with dead=true: only its dead letters)" },
});
const seqParams = object({ seq: seqText }, ['seq']);
const deadLetterBody = object({
  plugin: { ...plugin, description: 'the plugin whose dead letter it is; may be left out when only one plugin has it' },
});
/** retry and skip need no body when one plugin has the dead letter: none at all is read as {} (a JSON null is still refused). */
const noBodyIsEmpty = async (request: FastifyRequest) => {
  if (request.body === undefined) request.body = {};
};

const deadLetter = {
  type: 'object',
  properties: {
    plugin: { type: 'string' },
    seq: { type: 'integer' },
    attempts: { type: 'integer' },
    lastError: { type: 'string' },
    failedAt: { type: 'string' },
  },
} as const;
const subject = { type: ['object', 'null'], additionalProperties: true } as const;
const event = {
  type: 'object',
  properties: {
    seq: { type: 'integer' },
    point: { type: 'string' },
    operation: { type: 'string' },
    subjectKind: { type: 'string' },
    subjectKey: { type: 'string' },
    before: subject,
    after: subject,
    request: { type: 'object', additionalProperties: true },
    requestId: { type: 'string' },
    caller: { type: ['string', 'null'] },
    source: {
      type: 'string',
      description: 'how the request came: api, login, forward-auth or server; absent from events committed before it was recorded',
    },
    clientAddress: { type: 'string', description: "the client's address, for requests over HTTP" },
    userAgent: { type: 'string', description: "the request's User-Agent, when it sent one" },
    client: { type: 'string', description: 'what its keyhold-client header declared, e.g. cli/1.4.0 (informative only)' },
    at: { type: 'string' },
    deadLetters: { type: 'array', items: deadLetter },
    pendingFor: { type: 'array', items: { type: 'string' } },
  },
} as const;
const subscriber = {
  type: 'object',
  properties: {
    plugin: { type: 'string' },
    hooks: { type: 'array', items: { type: 'string' } },
    cursor: { type: 'integer' },
    pending: { type: 'integer' },
    lagSeconds: { type: 'number' },
    deadLetters: { type: 'integer' },
    failures: { type: 'integer' },
    lastError: { type: ['string', 'null'] },
    leaseHeld: { type: 'boolean' },
    leaseOwner: { type: ['string', 'null'] },
  },
} as const;

function limitOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const limit = Number(text);
  if (limit < 1 || limit > 1000)
    throw new KeyholdError('KH_ERR_INVALID_INPUT', 'querystring limit: must be from 1 to 1000', {
      in: 'querystring',
      problems: [{ path: 'limit', problem: 'must be from 1 to 1000' }],
    });
  return limit;
}

export function eventRoutes(app: FastifyInstance, { access, events }: { access: Access; events: EventControl }): void {
  const tags = ['events'];
  const root = access.need('GLOBAL_ROOT');

  app.get(
    '/v1/events',
    {
      onRequest: root,
      schema: {
        tags,
        summary: "Committed events in seq order, and each subscribed plugin's delivery: cursor, pending, lag, dead letters",
        querystring: listQuery,
        response: s.responses({
          200: {
            type: 'object',
            properties: { events: { type: 'array', items: event }, subscribers: { type: 'array', items: subscriber } },
          },
        }),
      },
    },
    async (request) => {
      const query = request.query as { after?: string; limit?: string; dead?: string; plugin?: string };
      const limit = limitOf(query.limit);
      return events.list({
        ...(query.after !== undefined && { after: Number(query.after) }),
        ...(limit !== undefined && { limit }),
        dead: query.dead === 'true',
        ...(query.plugin !== undefined && { plugin: query.plugin }),
      });
    },
  );

  app.get(
    '/v1/events/:seq',
    {
      onRequest: root,
      schema: {
        tags,
        summary: 'One committed event, its dead letters and the plugins still to get it',
        params: seqParams,
        response: s.responses({ 200: event }),
      },
    },
    async (request) => events.show(Number((request.params as { seq: string }).seq)),
  );

  app.post(
    '/v1/events/:seq/retry',
    {
      onRequest: root,
      preValidation: noBodyIsEmpty,
      schema: {
        tags,
        summary:
          'Deliver a dead letter to its plugin once more, now; 502 KH_ERR_EVENT_DELIVERY_FAILED when it fails again (it stays a dead letter)',
        params: seqParams,
        body: deadLetterBody,
        response: s.responses({ 200: object({ retried: deadLetter }) }),
      },
    },
    async (request) => ({
      retried: await events.retry(Number((request.params as { seq: string }).seq), (request.body as { plugin?: string }).plugin),
    }),
  );

  app.post(
    '/v1/events/:seq/skip',
    {
      onRequest: root,
      preValidation: noBodyIsEmpty,
      schema: {
        tags,
        summary: 'Drop a dead letter: its plugin never gets the event',
        params: seqParams,
        body: deadLetterBody,
        response: s.responses({ 200: object({ skipped: deadLetter }) }),
      },
    },
    async (request) => ({
      skipped: await events.skip(Number((request.params as { seq: string }).seq), (request.body as { plugin?: string }).plugin),
    }),
  );
}
