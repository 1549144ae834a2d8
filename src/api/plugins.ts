// /v1/plugins: the plugin host's status, reload and plugins' admin actions. The host is an optional
// dependency of the API: without one, the list is empty and a reload has nothing to do.
import type { FastifyInstance } from 'fastify';
import type { JsonObject } from 'keyhold-plugin-sdk';
import { KeyholdError } from '../errors.js';
import type { PluginHost } from '../host/host.js';
import { requestInfo, type Access } from './access.js';
import * as s from './schemas.js';

/** What the API needs from the plugin host. */
export type PluginControl = Pick<PluginHost, 'status' | 'reload'> & Partial<Pick<PluginHost, 'action'>>;

export function pluginRoutes(app: FastifyInstance, { access, plugins }: { access: Access; plugins?: PluginControl }): void {
  const tags = ['plugins'];

  app.get(
    '/v1/plugins',
    {
      onRequest: access.token,
      schema: {
        tags,
        summary: 'Loaded plugins and their state',
        response: s.responses({ 200: s.list('plugins', { type: 'object', additionalProperties: true }) }),
      },
    },
    async () => ({ plugins: plugins?.status() ?? [] }),
  );

  app.post(
    '/v1/plugins/reload',
    {
      onRequest: access.need('GLOBAL_ROOT'),
      schema: {
        tags,
        summary:
          'Read the plugin settings again and start the plugin set anew; the old set stays when the settings are not valid or any new plugin fails to load',
        response: s.responses({ 200: { type: 'object', additionalProperties: true } }),
      },
    },
    async () => {
      if (!plugins) return { swapped: false, failures: [], plugins: [] };
      const result = await plugins.reload();
      if (result.settingsError !== undefined) {
        throw new KeyholdError(
          'KH_ERR_CONFIG_INVALID',
          `plugin reload failed, the previous plugins keep serving: the settings cannot be read: ${result.settingsError}`,
          { plugins: result.plugins },
        );
      }
      if (!result.swapped) {
        const reasons = result.failures.map((f) => `${f.name}: ${f.reason}`).join('; ');
        throw new KeyholdError('KH_ERR_PLUGIN_FAILED', `plugin reload failed, the previous plugins keep serving: ${reasons}`, {
          failures: result.failures,
          plugins: result.plugins,
        });
      }
      return result;
    },
  );

  app.post<{ Params: { plugin: string; action: string }; Body: JsonObject }>(
    '/v1/plugins/:plugin/actions/:action',
    {
      onRequest: access.need('GLOBAL_ROOT'),
      schema: {
        tags,
        summary: "Run one of a plugin's admin actions (e.g. the totp plugin's enrol) with the body as its arguments",
        params: {
          type: 'object',
          properties: {
            plugin: { type: 'string', minLength: 1, maxLength: 128 },
            action: { type: 'string', minLength: 1, maxLength: 128 },
          },
          required: ['plugin', 'action'],
        },
        body: { type: 'object', additionalProperties: true },
        response: s.responses({ 200: { type: 'object', additionalProperties: true } }),
      },
    },
    async (request) => {
      const { plugin, action } = request.params;
      if (!plugins?.action) throw new KeyholdError('KH_ERR_ACTION_NOT_FOUND', `no plugin "${plugin}" is loaded`, { plugin, action });
      const info = requestInfo(request);
      return plugins.action(plugin, action, request.body, { requestId: info.requestId, caller: info.caller });
    },
  );
}
