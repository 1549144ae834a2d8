// /v1/entities: one route per entity operation. Reads need a token; each change needs the
// capability named in its hook (see access.ts).
import type { FastifyInstance } from 'fastify';
import type { Capability } from 'keyhold-plugin-sdk';
import type { CreateEntityInput, EntityMetaPatch, IdentityOperations, SetChange } from '../identity/operations.js';
import { requestInfo, type Access } from './access.js';
import * as s from './schemas.js';
import { subjectRoutes } from './subject-routes.js';

export interface RouteContext {
  identity: IdentityOperations;
  access: Access;
}

type IdParams = { id: string };

export function entityRoutes(app: FastifyInstance, { identity, access }: RouteContext): void {
  const tags = ['entities'];
  subjectRoutes(app, access, {
    path: '/v1/entities/:id',
    param: 'id',
    listKey: 'entities',
    tags,
    schema: s.entity,
    params: s.params.entity,
    keyParams: s.params.entityKey,
    searchSummary: 'Search entities by id, display name or legal name',
    infoSummary: 'An entity',
    metaCapability: 'MODIFY_ENTITY_META',
    search: (query) => identity.searchEntities(query),
    info: (id) => identity.entityInfo(id),
    untypedMeta: (info, id, change) => identity.entityUntypedMeta(info, id, change),
    kv: (info, id, change) => identity.entityKv(info, id, change),
    kvGet: (id, key) => identity.entityKvGet(id, key),
  });

  app.post<{ Body: CreateEntityInput }>(
    '/v1/entities',
    {
      onRequest: access.need('CREATE_ENTITY'),
      schema: { tags, summary: 'Create an entity', body: s.createEntityBody, response: s.responses({ 201: s.entity }) },
    },
    async (request, reply) => reply.code(201).send(await identity.createEntity(requestInfo(request), request.body)),
  );

  app.patch<{ Params: IdParams; Body: EntityMetaPatch }>(
    '/v1/entities/:id',
    {
      onRequest: access.need('MODIFY_ENTITY_META'),
      schema: {
        tags,
        summary: 'Change typed metadata fields',
        params: s.params.entity,
        body: s.entityMetaUpdate,
        response: s.responses({ 200: s.entity }),
      },
    },
    async (request) => identity.updateEntityMeta(requestInfo(request), request.params.id, request.body),
  );

  app.post<{ Params: IdParams; Body: SetChange<string> }>(
    '/v1/entities/:id/keys',
    {
      onRequest: access.need('MODIFY_ENTITY_KEYS', 'self'),
      schema: {
        tags,
        summary: 'Add or remove a public key (an entity may change its own)',
        params: s.params.entity,
        body: s.keyChange,
        response: s.responses({ 200: s.entity }),
      },
    },
    async (request) => identity.entityKeys(requestInfo(request), request.params.id, request.body),
  );

  app.get<{ Params: IdParams }>(
    '/v1/entities/:id/capabilities',
    {
      onRequest: access.token,
      schema: {
        tags,
        summary: 'Direct and effective (direct + through groups) capabilities',
        params: s.params.entity,
        response: s.responses({
          200: {
            type: 'object',
            properties: { direct: { type: 'array', items: { type: 'string' } }, effective: { type: 'array', items: { type: 'string' } } },
          },
        }),
      },
    },
    async (request) => {
      const [entity, effective] = await Promise.all([
        identity.entityInfo(request.params.id),
        identity.effectiveCapabilities(request.params.id),
      ]);
      return { direct: entity.meta.capabilities, effective };
    },
  );

  // Granting capabilities is reserved to GLOBAL_ROOT: any lesser capability could otherwise grant itself more.
  app.post<{ Params: IdParams; Body: SetChange<Capability> }>(
    '/v1/entities/:id/capabilities',
    {
      onRequest: access.need('GLOBAL_ROOT'),
      schema: {
        tags,
        summary: 'Add or remove a direct capability (GLOBAL_ROOT only)',
        params: s.params.entity,
        body: s.capabilityChange,
        response: s.responses({ 200: s.entity }),
      },
    },
    async (request) => identity.entityCapabilities(requestInfo(request), request.params.id, request.body),
  );

  app.post<{ Params: IdParams }>(
    '/v1/entities/:id/lock',
    {
      onRequest: access.need('LOCK_ENTITY'),
      schema: {
        tags,
        summary: 'Lock: authentication is refused until unlocked',
        params: s.params.entity,
        response: s.responses({ 200: s.entity }),
      },
    },
    async (request) => identity.lockEntity(requestInfo(request), request.params.id),
  );

  app.post<{ Params: IdParams }>(
    '/v1/entities/:id/unlock',
    {
      onRequest: access.need('UNLOCK_ENTITY'),
      schema: { tags, summary: 'Unlock', params: s.params.entity, response: s.responses({ 200: s.entity }) },
    },
    async (request) => identity.unlockEntity(requestInfo(request), request.params.id),
  );

  app.put<{ Params: IdParams; Body: { secret: string } }>(
    '/v1/entities/:id/secret',
    {
      onRequest: access.need('CHANGE_ENTITY_SECRET'),
      schema: {
        tags,
        summary: "Set an entity's secret (administrative; see /v1/auth/change-secret for self-service)",
        params: s.params.entity,
        body: s.secretBody,
        response: s.responses({ 204: { type: 'null' } }),
      },
    },
    async (request, reply) => {
      await identity.setSecret(requestInfo(request), request.params.id, request.body.secret);
      return reply.code(204).send();
    },
  );

  app.get<{ Params: IdParams; Querystring: { indirect?: 'true' | 'false' } }>(
    '/v1/entities/:id/groups',
    {
      onRequest: access.token,
      schema: {
        tags,
        summary: 'Groups the entity is in (direct, or also through expansions)',
        params: s.params.entity,
        querystring: s.groupsQuery,
        response: s.responses({ 200: s.list('groups', { type: 'string' }) }),
      },
    },
    async (request) => ({ groups: await identity.entityGroups(request.params.id, { indirect: request.query.indirect === 'true' }) }),
  );

  app.delete<{ Params: IdParams }>(
    '/v1/entities/:id',
    {
      onRequest: access.need('DESTROY_ENTITY'),
      schema: {
        tags,
        summary: 'Destroy an entity and its memberships',
        params: s.params.entity,
        response: s.responses({ 204: { type: 'null' } }),
      },
    },
    async (request, reply) => {
      await identity.destroyEntity(requestInfo(request), request.params.id);
      return reply.code(204).send();
    },
  );
}
