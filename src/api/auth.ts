// /v1/auth: the routes that need no token, because they are how one is obtained or checked.
// Each that takes a secret runs AuthCheck (and its plugin hooks) through the login gate: throttled,
// and every refusal (unknown id, wrong secret, locked, throttled, plugin veto) answered alike.
import type { FastifyInstance } from 'fastify';
import type { RouteContext } from './entities.js';
import type { LoginGate } from './login-gate.js';
import * as s from './schemas.js';
import type { TokenRevocation } from './revocation.js';
import type { TokenClaims, TokenService } from './tokens.js';

type Credentials = { id: string; secret: string };

function claimsView(claims: TokenClaims) {
  return {
    sub: claims.sub,
    capabilities: claims.caps,
    expiresAt: new Date(claims.exp * 1000).toISOString(),
    issuedAt: new Date(claims.iat * 1000).toISOString(),
  };
}

export function authRoutes(
  app: FastifyInstance,
  { identity, access, tokens, revocation, gate }: RouteContext & { tokens: TokenService; revocation: TokenRevocation; gate: LoginGate },
): void {
  const tags = ['auth'];

  app.post<{ Body: Credentials }>(
    '/v1/auth/token',
    {
      schema: {
        tags,
        security: [],
        summary: 'Log in: id + secret → a signed, short-lived token carrying the effective capabilities',
        body: s.credentials,
        response: s.responses({
          200: {
            type: 'object',
            properties: {
              token: { type: 'string' },
              expiresAt: { type: 'string' },
              id: { type: 'string' },
              capabilities: { type: 'array', items: { type: 'string' } },
            },
          },
        }),
      },
    },
    async (request) => {
      // Read before the check: a logout, lock or secret change committed after it replaces the
      // generation, so a token racing one is refused rather than spared ('' fits no entity).
      const generation = (await revocation.generationOf(request.body.id)) ?? '';
      const entity = await gate.authCheck(request, request.body.id, request.body.secret);
      const capabilities = await identity.effectiveCapabilities(entity.id);
      return { ...(await tokens.issue(entity.id, capabilities, generation)), id: entity.id, capabilities };
    },
  );

  app.post<{ Body: Credentials }>(
    '/v1/auth/check',
    {
      schema: {
        tags,
        security: [],
        summary: 'Check an id + secret without issuing a token',
        body: s.credentials,
        response: s.responses({ 200: { type: 'object', properties: { ok: { type: 'boolean' }, id: { type: 'string' } } } }),
      },
    },
    async (request) => {
      const entity = await gate.authCheck(request, request.body.id, request.body.secret);
      return { ok: true, id: entity.id };
    },
  );

  app.post<{ Body: { id: string; oldSecret: string; newSecret: string } }>(
    '/v1/auth/change-secret',
    {
      schema: {
        tags,
        security: [],
        summary: 'Self-service: change your own secret by proving the old one',
        body: s.changeSecretBody,
        response: s.responses({ 204: { type: 'null' } }),
      },
    },
    async (request, reply) => {
      const { id, oldSecret, newSecret } = request.body;
      const entity = await gate.authCheck(request, id, oldSecret);
      // Proving the old secret grants no capability: enough to change one's own secret, nothing else.
      await identity.setSecret({ requestId: request.id, caller: entity.id, capabilities: [] }, entity.id, newSecret);
      return reply.code(204).send();
    },
  );

  app.post<{ Body: { token: string } }>(
    '/v1/auth/validate',
    {
      schema: {
        tags,
        security: [],
        summary: 'Validate a token and return what it says (401 when invalid, expired or revoked)',
        body: s.validateTokenBody,
        response: s.responses({ 200: s.claims }),
      },
    },
    async (request) => claimsView(await access.verifyToken(request.body.token)),
  );

  app.post(
    '/v1/auth/logout',
    {
      onRequest: access.token,
      schema: {
        tags,
        summary: "Log out: revoke every token of the caller's entity (every session of it ends)",
        response: s.responses({ 204: { type: 'null' } }),
      },
    },
    async (request, reply) => {
      await revocation.revokeAll(request.caller!.sub);
      return reply.code(204).send();
    },
  );

  app.get(
    '/v1/auth/whoami',
    { onRequest: access.token, schema: { tags, summary: 'What the presented token says', response: s.responses({ 200: s.claims }) } },
    async (request) => claimsView(request.caller!),
  );

  app.get(
    '/v1/auth/jwks',
    {
      schema: {
        tags,
        security: [],
        summary:
          'The public keys tokens are signed with (JWKS: the current key and those retired less than a token lifetime ago, each with its kid), for services that verify tokens themselves',
      },
    },
    async () => ({ keys: await tokens.publicJwks() }),
  );
}
