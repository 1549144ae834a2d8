// The routes entities and groups share, declared once: search, info, untyped metadata and typed
// key/value data. Each subject kind supplies its path, schemas, capability and operations.
import type { FastifyInstance } from 'fastify';
import type { Capability, KVValues } from 'keyhold-plugin-sdk';
import type { RequestInfo } from '../lifecycle/engine.js';
import type { KvChange, UntypedMetaChange } from '../identity/operations.js';
import type { SearchQuery } from '../store/store.js';
import { requestInfo, type Access } from './access.js';
import * as s from './schemas.js';

export interface SubjectRoutes<S> {
  /** e.g. `/v1/entities/:id`: the collection is this without its last segment. */
  path: `/v1/${string}/:${string}`;
  /** The path parameter naming the subject (`id` or `name`). */
  param: string;
  /** The property the search result lists under (`entities`, `groups`). */
  listKey: string;
  tags: string[];
  schema: object;
  params: object;
  keyParams: object;
  searchSummary: string;
  infoSummary: string;
  /** The capability that changes untyped metadata and kv. */
  metaCapability: Capability;
  search(query: SearchQuery): Promise<S[]>;
  info(key: string): Promise<S>;
  untypedMeta(info: RequestInfo, key: string, change: UntypedMetaChange): Promise<S>;
  kv(info: RequestInfo, key: string, change: KvChange): Promise<S>;
  kvGet(key: string, kvKey: string): Promise<KVValues>;
}

type Params = Record<string, string>;

export function subjectRoutes<S>(app: FastifyInstance, access: Access, r: SubjectRoutes<S>): void {
  const { tags, path } = r;
  const subject = (params: Params) => params[r.param]!;

  app.get<{ Querystring: s.SearchParams }>(
    path.slice(0, path.lastIndexOf('/')),
    {
      onRequest: access.token,
      schema: { tags, summary: r.searchSummary, querystring: s.searchQuery, response: s.responses({ 200: s.list(r.listKey, r.schema) }) },
    },
    async (request) => ({ [r.listKey]: await r.search(s.toSearchQuery(request.query)) }),
  );

  app.get<{ Params: Params }>(
    path,
    { onRequest: access.token, schema: { tags, summary: r.infoSummary, params: r.params, response: s.responses({ 200: r.schema }) } },
    async (request) => r.info(subject(request.params)),
  );

  app.post<{ Params: Params; Body: UntypedMetaChange }>(
    `${path}/untyped-meta`,
    {
      onRequest: access.need(r.metaCapability),
      schema: {
        tags,
        summary: 'Upsert or clear untyped "key:value" metadata',
        params: r.params,
        body: s.untypedMetaChange,
        response: s.responses({ 200: r.schema }),
      },
    },
    async (request) => r.untypedMeta(requestInfo(request), subject(request.params), request.body),
  );

  app.post<{ Params: Params; Body: KvChange }>(
    `${path}/kv`,
    {
      onRequest: access.need(r.metaCapability),
      schema: {
        tags,
        summary: 'Add, replace or delete a typed key/value entry',
        params: r.params,
        body: s.kvChange,
        response: s.responses({ 200: r.schema }),
      },
    },
    async (request) => r.kv(requestInfo(request), subject(request.params), request.body),
  );

  app.get<{ Params: Params }>(
    `${path}/kv/:key`,
    {
      onRequest: access.token,
      schema: { tags, summary: 'The values of one key/value entry', params: r.keyParams, response: s.responses({ 200: s.kvValues }) },
    },
    async (request) => ({ key: request.params.key!, values: (await r.kvGet(subject(request.params), request.params.key!)).values }),
  );
}
