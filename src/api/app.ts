// The HTTP API: a fastify instance with strict JSON-schema validation on every route, the one
// error mapping, request ids (logged on every line and returned as x-request-id), request
// metrics and the OpenAPI document. The server (server.ts) builds it from its parts.
import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import { fastify, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';
import { KeyholdError } from '../errors.js';
import type { LoginThrottle } from '../identity/login-throttle.js';
import type { IdentityOperations } from '../identity/operations.js';
import type { PluginStateStore } from '../store/plugin-state.js';
import type { Store, StoreHealth } from '../store/store.js';
import { VERSION } from '../version.js';
import { Access } from './access.js';
import { authRoutes } from './auth.js';
import type { ClientAddressSettings } from './client-address.js';
import { answerClientError } from './client-errors.js';
import { entityRoutes } from './entities.js';
import { eventRoutes, type EventControl } from './events.js';
import { installErrorHandling, toKeyholdError } from './error-mapping.js';
import { forwardAuthRoutes } from './forward-auth.js';
import type { ForwardAuthSettings } from './forward-auth-settings.js';
import { groupRoutes } from './groups.js';
import { keyRoutes } from './keys.js';
import { LoginGate } from './login-gate.js';
import { pluginStateRoutes } from './plugin-state.js';
import { pluginRoutes, type PluginControl } from './plugins.js';
import type { TokenRevocation } from './revocation.js';
import { installRequestInput, MAX_PARAM_LENGTH } from './request-input.js';
import { installRequestOrigin } from './request-origin.js';
import { systemRoutes } from './system.js';
import type { TokenService } from './tokens.js';

export const REQUEST_ID_HEADER = 'x-request-id';

export interface ApiDeps {
  identity: IdentityOperations;
  tokens: TokenService;
  /** The per-request check that a token was not revoked, and logout. */
  revocation: TokenRevocation;
  /** In front of every route that checks a secret. */
  throttle: LoginThrottle;
  logger: Logger;
  metrics: Registry;
  bodyLimitBytes: number;
  /** Resolves with the entity count when the store answers (health and status). */
  storeCheck(): Promise<number>;
  /** The store's health, for /healthz. */
  storeHealth(): Promise<StoreHealth>;
  /** PEM cert and key: serve HTTPS. */
  tls?: { cert: Buffer; key: Buffer };
  /** The plugin host, when one runs. */
  plugins?: PluginControl;
  /** The committed-event outbox, when one runs. */
  events?: EventControl;
  /** Which peers' forwarded client address every route believes (`api:` settings). */
  clientAddress: ClientAddressSettings;
  /** The plugins' state in the store, for the operator's /v1/plugins/:name/state routes. */
  pluginState?: PluginStateStore;
  /** /v1/forward-auth: its settings, and the store its cache and identity headers read. */
  forwardAuth: { settings: ForwardAuthSettings; store: Pick<Store, 'reader' | 'changeCounter'> };
}

function requestMetrics(app: FastifyInstance, registry: Registry): void {
  const labelNames = ['method', 'route', 'status'] as const;
  const requests = new Counter({ name: 'keyhold_http_requests_total', help: 'HTTP requests served', labelNames, registers: [registry] });
  const seconds = new Histogram({
    name: 'keyhold_http_request_duration_seconds',
    help: 'HTTP request duration',
    labelNames,
    registers: [registry],
  });
  app.addHook('onResponse', async (request, reply) => {
    const labels = { method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) };
    requests.inc(labels);
    seconds.observe(labels, reply.elapsedTime / 1000);
  });
}

export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const app = fastify({
    loggerInstance: deps.logger,
    bodyLimit: deps.bodyLimitBytes,
    genReqId: () => randomUUID(),
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // What the HTTP parser refuses before fastify sees a request (headers too large, not HTTP) gets a catalog body too.
    clientErrorHandler: answerClientError,
    ...(deps.tls && { https: deps.tls }),
    // Strict input: unknown fields are refused rather than silently dropped, and nothing is coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true } },
    // A URL that cannot be decoded fails before routing; it gets the same error body as everything else.
    frameworkErrors: (error, _request, reply) => {
      const known = toKeyholdError(error) ?? new KeyholdError('KH_ERR_INVALID_INPUT', error.message);
      void (reply as FastifyReply).code(known.status).send(known.toJSON());
    },
  }) as unknown as FastifyInstance;

  app.decorateRequest('caller', null);
  app.decorateRequest('arrivedAt', 0);
  app.addHook('onRequest', async (request, reply) => {
    request.arrivedAt = Date.now() - reply.elapsedTime;
    reply.header(REQUEST_ID_HEADER, request.id);
  });
  installRequestOrigin(app, deps.clientAddress);
  installErrorHandling(app);
  installRequestInput(app);
  requestMetrics(app, deps.metrics);

  await app.register(swagger, {
    openapi: {
      // 3.1: the schemas use JSON Schema's if/then/else and const, which 3.0 lacks.
      openapi: '3.1.0',
      info: {
        title: 'keyhold',
        version: VERSION,
        description: 'Entities, groups, secrets and tokens. Errors are {code, message, details?}; see docs/api.md.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      security: [{ bearer: [] }],
    },
  });

  const access = new Access(deps.tokens, deps.identity, deps.revocation);
  const context = { identity: deps.identity, access };
  entityRoutes(app, context);
  groupRoutes(app, context);
  const gate = new LoginGate(deps.identity, deps.throttle, deps.metrics);
  authRoutes(app, { ...context, tokens: deps.tokens, revocation: deps.revocation, gate });
  const plugins = deps.plugins && { plugins: deps.plugins };
  systemRoutes(app, { access, metrics: deps.metrics, storeCheck: deps.storeCheck, storeHealth: deps.storeHealth, ...plugins });
  pluginRoutes(app, { access, ...plugins });
  if (deps.pluginState) pluginStateRoutes(app, { access, pluginState: deps.pluginState });
  keyRoutes(app, { access, tokens: deps.tokens });
  if (deps.events) eventRoutes(app, { access, events: deps.events });
  // The login throttle wraps `authCheck` here, keyed by info.clientAddress (the end user's, when a trusted proxy forwarded it).
  forwardAuthRoutes(app, {
    ...deps.forwardAuth,
    access,
    authCheck: (info, id, secret) => gate.check(info, deps.logger, id, secret),
    metrics: deps.metrics,
    logger: deps.logger,
  });

  await app.ready();
  return app;
}
