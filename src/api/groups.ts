// /v1/groups: one route per group operation. Membership changes also admit members of the
// group's managedBy group; capability grants are GLOBAL_ROOT's alone (see entities.ts).
import type { FastifyInstance } from 'fastify';
import type { Capability, ExpansionMode } from 'keyhold-plugin-sdk';
import type { CreateGroupInput, GroupPatch, SetChange } from '../identity/operations.js';
import { demand, requestInfo } from './access.js';
import type { RouteContext } from './entities.js';
import * as s from './schemas.js';
import { subjectRoutes } from './subject-routes.js';

type NameParams = { name: string };
type ExpansionChange = { action: 'add' | 'remove'; mode: ExpansionMode; group: string };

export function groupRoutes(app: FastifyInstance, { identity, access }: RouteContext): void {
  const tags = ['groups'];
  subjectRoutes(app, access, {
    path: '/v1/groups/:name',
    param: 'name',
    listKey: 'groups',
    tags,
    schema: s.group,
    params: s.params.group,
    keyParams: s.params.groupKey,
    searchSummary: 'Search groups by name or display name',
    infoSummary: 'A group',
    metaCapability: 'MODIFY_GROUP_META',
    search: (query) => identity.searchGroups(query),
    info: (name) => identity.groupInfo(name),
    untypedMeta: (info, name, change) => identity.groupUntypedMeta(info, name, change),
    kv: (info, name, change) => identity.groupKv(info, name, change),
    kvGet: (name, key) => identity.groupKvGet(name, key),
  });

  app.post<{ Body: CreateGroupInput }>(
    '/v1/groups',
    {
      onRequest: access.need('CREATE_GROUP'),
      schema: {
        tags,
        summary: 'Create a group (initial capabilities need GLOBAL_ROOT)',
        body: s.createGroupBody,
        response: s.responses({ 201: s.group }),
      },
    },
    async (request, reply) => {
      if (request.body.capabilities?.length) demand(request.caller!, 'GLOBAL_ROOT');
      return reply.code(201).send(await identity.createGroup(requestInfo(request), request.body));
    },
  );

  app.patch<{ Params: NameParams; Body: GroupPatch }>(
    '/v1/groups/:name',
    {
      onRequest: access.need('MODIFY_GROUP_META'),
      schema: {
        tags,
        summary: 'Change display name or managedBy',
        params: s.params.group,
        body: s.groupPatch,
        response: s.responses({ 200: s.group }),
      },
    },
    async (request) => identity.updateGroup(requestInfo(request), request.params.name, request.body),
  );

  app.post<{ Params: NameParams; Body: SetChange<Capability> }>(
    '/v1/groups/:name/capabilities',
    {
      onRequest: access.need('GLOBAL_ROOT'),
      schema: {
        tags,
        summary: "Add or remove a capability the group's members get (GLOBAL_ROOT only)",
        params: s.params.group,
        body: s.capabilityChange,
        response: s.responses({ 200: s.group }),
      },
    },
    async (request) => identity.groupCapabilities(requestInfo(request), request.params.name, request.body),
  );

  app.post<{ Params: NameParams; Body: ExpansionChange }>(
    '/v1/groups/:name/expansions',
    {
      onRequest: access.need('MODIFY_GROUP_META'),
      schema: {
        tags,
        summary: 'Add or remove an INCLUDE/EXCLUDE expansion',
        params: s.params.group,
        body: s.expansionChange,
        response: s.responses({ 200: s.group }),
      },
    },
    async (request) => {
      const { action, mode, group } = request.body;
      return identity.groupExpansions(requestInfo(request), request.params.name, { action, value: { mode, group } });
    },
  );

  app.get<{ Params: NameParams }>(
    '/v1/groups/:name/members',
    {
      onRequest: access.token,
      schema: {
        tags,
        summary: 'Member entity ids, expansions resolved',
        params: s.params.group,
        response: s.responses({ 200: s.list('members', { type: 'string' }) }),
      },
    },
    async (request) => ({ members: await identity.groupMembers(request.params.name) }),
  );

  app.put<{ Params: NameParams & { entityId: string } }>(
    '/v1/groups/:name/members/:entityId',
    {
      onRequest: access.need('MODIFY_GROUP_MEMBERS', 'group-manager'),
      schema: {
        tags,
        summary: "Add a direct member (also allowed to members of the group's managedBy group)",
        params: s.params.membership,
        response: s.responses({ 200: s.entity }),
      },
    },
    async (request) => identity.addMember(requestInfo(request), request.params.name, request.params.entityId),
  );

  app.delete<{ Params: NameParams & { entityId: string } }>(
    '/v1/groups/:name/members/:entityId',
    {
      onRequest: access.need('MODIFY_GROUP_MEMBERS', 'group-manager'),
      schema: {
        tags,
        summary: "Remove a direct member (also allowed to members of the group's managedBy group)",
        params: s.params.membership,
        response: s.responses({ 200: s.entity }),
      },
    },
    async (request) => identity.removeMember(requestInfo(request), request.params.name, request.params.entityId),
  );

  app.delete<{ Params: NameParams }>(
    '/v1/groups/:name',
    {
      onRequest: access.need('DESTROY_GROUP'),
      schema: { tags, summary: 'Destroy a group', params: s.params.group, response: s.responses({ 204: { type: 'null' } }) },
    },
    async (request, reply) => {
      await identity.destroyGroup(requestInfo(request), request.params.name);
      return reply.code(204).send();
    },
  );
}
