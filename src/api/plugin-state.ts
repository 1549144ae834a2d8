// /v1/plugins/:name/state: an operator's view of a plugin's state (docs/plugin-guide.md, "State"):
// list, read and delete its keys (e.g. `keyhold plugin state fail2lock delete alice` unlocks alice).
// GLOBAL_ROOT only: a plugin's state may hold anything it keeps. Served by the same StateService
// rules as the plugin's own requests, in the plugin's namespace of the store; the plugin need not be loaded.
import { StateError, StateErrorCodes, StateService, STATE_LIMITS, type StateEntry, type StateRequests } from 'keyhold-plugin-sdk';
import type { FastifyInstance } from 'fastify';
import { KeyholdError } from '../errors.js';
import { pluginNamespace, type PluginStateStore } from '../store/plugin-state.js';
import type { Access } from './access.js';
import * as s from './schemas.js';

const entry = {
  type: 'object',
  properties: {
    key: { type: 'string' },
    value: { type: 'string' },
    version: { type: 'integer' },
    expiresAt: { type: ['integer', 'null'] },
  },
} as const;
const pluginName = { type: 'string', minLength: 1, maxLength: 255 } as const;
const key = { type: 'string', minLength: 1, maxLength: STATE_LIMITS.maxKeyBytes } as const;
const nameParams = { type: 'object', properties: { name: pluginName }, required: ['name'], additionalProperties: false } as const;
const keyParams = {
  type: 'object',
  properties: { name: pluginName, key },
  required: ['name', 'key'],
  additionalProperties: false,
} as const;
const listQuery = {
  type: 'object',
  properties: {
    prefix: { type: 'string', maxLength: STATE_LIMITS.maxKeyBytes },
    after: { type: 'string', maxLength: STATE_LIMITS.maxKeyBytes },
    limit: { type: 'string', pattern: '^[0-9]{1,4}$' },
  },
  additionalProperties: false,
} as const;

/** One request in `plugin`'s namespace; a refused one is KH_ERR_INVALID_INPUT with the rule's words. */
async function stateCall<M extends keyof StateRequests>(
  store: PluginStateStore,
  plugin: string,
  method: M,
  params: StateRequests[M]['params'],
): Promise<StateRequests[M]['result']> {
  try {
    return (await new StateService(pluginNamespace(store, plugin)).handle(method, params)) as StateRequests[M]['result'];
  } catch (err) {
    if (err instanceof StateError && err.code === StateErrorCodes.InvalidParams)
      throw new KeyholdError('KH_ERR_INVALID_INPUT', err.message);
    throw err;
  }
}

function notFound(plugin: string, key: string): KeyholdError {
  return new KeyholdError('KH_ERR_PLUGIN_STATE_NOT_FOUND', `plugin "${plugin}" has no live state key "${key}"`);
}

export function pluginStateRoutes(app: FastifyInstance, { access, pluginState }: { access: Access; pluginState: PluginStateStore }): void {
  const tags = ['plugins'];
  const root = access.need('GLOBAL_ROOT');

  app.get(
    '/v1/plugins/:name/state',
    {
      onRequest: root,
      schema: {
        tags,
        summary:
          "A plugin's live state entries whose key starts with prefix, in key order, after the key `after`, at most limit (default 100, at most 1000)",
        params: nameParams,
        querystring: listQuery,
        response: s.responses({
          200: { type: 'object', properties: { entries: { type: 'array', items: entry }, more: { type: 'boolean' } } },
        }),
      },
    },
    async (request) => {
      const { name } = request.params as { name: string };
      const { prefix, after, limit } = request.query as { prefix?: string; after?: string; limit?: string };
      return stateCall(pluginState, name, 'state/list', {
        ...(prefix !== undefined && { prefix }),
        ...(after !== undefined && { after }),
        ...(limit !== undefined && { limit: Number(limit) }),
      });
    },
  );

  app.get(
    '/v1/plugins/:name/state/:key',
    {
      onRequest: root,
      schema: { tags, summary: "One live entry of a plugin's state", params: keyParams, response: s.responses({ 200: entry }) },
    },
    async (request): Promise<StateEntry> => {
      const { name, key } = request.params as { name: string; key: string };
      return (await stateCall(pluginState, name, 'state/get', { key })) ?? Promise.reject(notFound(name, key));
    },
  );

  app.delete(
    '/v1/plugins/:name/state/:key',
    {
      onRequest: root,
      schema: {
        tags,
        summary: "Deletes one key of a plugin's state (fail2lock: unlocks that entity)",
        params: keyParams,
        response: s.responses({ 204: { type: 'null' } }),
      },
    },
    async (request, reply) => {
      const { name, key } = request.params as { name: string; key: string };
      if (!(await stateCall(pluginState, name, 'state/delete', { key })).deleted) throw notFound(name, key);
      return reply.status(204).send();
    },
  );
}
