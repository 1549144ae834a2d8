// /v1/keys: the token signing keys for operators: which there are (ids, states, dates; never the
// private material) and rotation. Both need GLOBAL_ROOT: a rotation changes what every server on
// the database signs with.
import type { FastifyInstance } from 'fastify';
import type { Access } from './access.js';
import * as s from './schemas.js';
import type { TokenService } from './tokens.js';

const key = {
  type: 'object',
  properties: {
    kid: { type: 'string' },
    state: { type: 'string', enum: ['current', 'retired', 'expired'] },
    origin: { type: 'string', enum: ['generated', 'imported'] },
    createdAt: { type: 'string' },
    retiredAt: { type: ['string', 'null'] },
    acceptedUntil: { type: ['string', 'null'] },
  },
} as const;

export function keyRoutes(
  app: FastifyInstance,
  { access, tokens }: { access: Access; tokens: Pick<TokenService, 'listKeys' | 'rotateKeys'> },
): void {
  const tags = ['keys'];

  app.get(
    '/v1/keys',
    {
      onRequest: access.need('GLOBAL_ROOT'),
      schema: {
        tags,
        summary: 'The token signing keys: the current one, and the retired ones with the time until which their tokens are accepted',
        response: s.responses({ 200: s.list('keys', key) }),
      },
    },
    async () => ({ keys: await tokens.listKeys() }),
  );

  app.post(
    '/v1/keys/rotate',
    {
      onRequest: access.need('GLOBAL_ROOT'),
      schema: {
        tags,
        summary:
          'Make a new current signing key (on every server of the database); the previous one keeps verifying the tokens it signed for one token lifetime',
        response: s.responses({ 200: { type: 'object', properties: { current: key }, required: ['current'] } }),
      },
    },
    async (request) => {
      const current = await tokens.rotateKeys();
      request.log.warn({ kid: current.kid, by: request.caller!.sub }, `token signing key rotated: new current key ${current.kid}`);
      return { current };
    },
  );
}
