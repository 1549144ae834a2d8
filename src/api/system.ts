// Operational routes: health (for load balancers and supervisors, no token), Prometheus
// metrics, the OpenAPI document and server status.
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { VERSION } from '../version.js';
import type { Access } from './access.js';
import type { PluginControl } from './plugins.js';
import * as s from './schemas.js';

export interface SystemContext {
  access: Access;
  metrics: Registry;
  /** Resolves with the entity count when the store answers. */
  storeCheck(): Promise<number>;
  plugins?: PluginControl;
}

const startedAt = Date.now();

export function systemRoutes(app: FastifyInstance, { access, metrics, storeCheck, plugins }: SystemContext): void {
  const tags = ['system'];

  app.get(
    '/healthz',
    // Probed every few seconds by supervisors and load balancers: logged only when something is wrong.
    { logLevel: 'warn', schema: { tags, security: [], summary: 'Liveness and store health (200 ok, 503 when the store does not answer), with plugin status', response: { 200: { type: 'object', additionalProperties: true }, 503: { type: 'object', additionalProperties: true } } } },
    async (request, reply) => {
      const pluginStates = plugins?.status();
      const pluginPart = pluginStates ? { plugins: pluginStates } : {};
      try {
        await storeCheck();
      } catch (err) {
        request.log.error({ err }, 'health check: the store does not answer');
        return reply.code(503).send({ status: 'unavailable', store: 'failing', ...pluginPart });
      }
      // A plugin that is down fails only the requests that need it: the server stays in service, degraded.
      const degraded = pluginStates?.some((p) => p.state !== 'ready') ?? false;
      return { status: degraded ? 'degraded' : 'ok', store: 'ok', ...pluginPart };
    },
  );

  app.get('/metrics', { logLevel: 'warn', schema: { tags, security: [], summary: 'Prometheus metrics (text exposition format)' } }, async (_request, reply) => {
    return reply.type(metrics.contentType).send(await metrics.metrics());
  });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  app.get(
    '/v1/system/status',
    {
      onRequest: access.token,
      schema: {
        tags,
        summary: 'Version, uptime, entity count and plugin status',
        response: s.responses({ 200: { type: 'object', properties: { version: { type: 'string' }, uptimeSeconds: { type: 'integer' }, entities: { type: 'integer' }, plugins: { type: 'array', items: { type: 'object', additionalProperties: true } } } } }),
      },
    },
    async () => ({ version: VERSION, uptimeSeconds: Math.floor((Date.now() - startedAt) / 1000), entities: await storeCheck(), plugins: plugins?.status() ?? [] }),
  );
}
