// Operational routes: health (for load balancers and supervisors, no token; its details need
// one), Prometheus metrics, the OpenAPI document and server status.
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { StoreHealth } from '../store/store.js';
import { VERSION } from '../version.js';
import type { Access } from './access.js';
import type { PluginControl } from './plugins.js';
import * as s from './schemas.js';

export interface SystemContext {
  access: Access;
  metrics: Registry;
  /** Resolves with the entity count when the store answers. */
  storeCheck(): Promise<number>;
  storeHealth(): Promise<StoreHealth>;
  plugins?: PluginControl;
}

const healthBody = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['ok', 'degraded', 'unavailable'] },
    store: {
      type: 'object',
      additionalProperties: true,
      description: 'with a token: reads, writes (ok, busy, full, failing), problem, queuedWrites',
    },
    plugins: {
      type: 'array',
      items: { type: 'object', additionalProperties: true },
      description: 'with a token: each plugin and its state',
    },
  },
  required: ['status'],
} as const;

const startedAt = Date.now();

export function systemRoutes(app: FastifyInstance, { access, metrics, storeCheck, storeHealth, plugins }: SystemContext): void {
  const tags = ['system'];

  app.get(
    '/healthz',
    // Probed every few seconds by supervisors and load balancers: logged only when something is wrong.
    {
      logLevel: 'warn',
      schema: {
        tags,
        // Documented as anonymous (what a load balancer uses); a bearer token, when sent, adds the details.
        security: [],
        summary:
          'Health: 200 ok or degraded (a plugin is down), 503 degraded (the store cannot write) or unavailable (the store does not answer); with a token, the store and plugin details',
        response: s.responses({ 200: healthBody, 503: healthBody }),
      },
    },
    async (request, reply) => {
      // Anyone may ask whether the server is up; what is wrong inside (store, plugins) is for callers with a token.
      const detailed = request.headers.authorization !== undefined;
      if (detailed) await access.authenticate(request);
      const store = await storeHealth();
      const pluginStates = plugins?.status() ?? [];
      // A plugin that is down fails only the requests that need it: the server stays in service, degraded.
      // A store that cannot write fails every change, so the server is out of service (503) though reads still work.
      const status =
        store.reads !== 'ok' ? 'unavailable' : store.writes !== 'ok' || pluginStates.some((p) => p.state !== 'ready') ? 'degraded' : 'ok';
      const storeOk = store.reads === 'ok' && store.writes === 'ok';
      if (!storeOk)
        request.log.error(
          { store },
          `health check: the store ${store.reads !== 'ok' ? 'does not answer' : `cannot write (${store.writes})`}: ${store.problem}`,
        );
      return reply.code(storeOk ? 200 : 503).send(detailed ? { status, store, plugins: pluginStates } : { status });
    },
  );

  app.get(
    '/metrics',
    { logLevel: 'warn', schema: { tags, security: [], summary: 'Prometheus metrics (text exposition format)' } },
    async (_request, reply) => {
      return reply.type(metrics.contentType).send(await metrics.metrics());
    },
  );

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  app.get(
    '/v1/system/status',
    {
      onRequest: access.token,
      schema: {
        tags,
        summary: 'Version, uptime, entity count and plugin status',
        response: s.responses({
          200: {
            type: 'object',
            properties: {
              version: { type: 'string' },
              uptimeSeconds: { type: 'integer' },
              entities: { type: 'integer' },
              plugins: { type: 'array', items: { type: 'object', additionalProperties: true } },
            },
          },
        }),
      },
    },
    async () => ({
      version: VERSION,
      uptimeSeconds: Math.floor((Date.now() - startedAt) / 1000),
      entities: await storeCheck(),
      plugins: plugins?.status() ?? [],
    }),
  );
}
