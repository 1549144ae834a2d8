// What the server knows about where an HTTP request came from, established once when it arrives,
// before any route runs, so that the API's routes, its logins and forward authentication all see
// the same: the client's address (client-address.ts's one trusted-proxy rule), its User-Agent and
// the client it declares in the keyhold-client header. Hooks get these in their context; the login
// throttle counts the address. The user agent and the declared client are the client's own words.
import type { FastifyInstance } from 'fastify';
import { MAX_USER_AGENT_LENGTH } from 'keyhold-plugin-sdk';
import { TrustedProxies, type ClientAddressSettings } from './client-address.js';

/** The header a client names itself in, `name/version`; the keyhold CLI sends `cli/<version>`. Informative only: any client can send it. */
export const CLIENT_HEADER = 'keyhold-client';

/** A declared client: a short name and version, nothing a log or a hook must escape. */
const CLIENT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}\/[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}$/;

export interface RequestOrigin {
  /** The TCP peer, or the address a trusted proxy forwarded. */
  clientAddress: string;
  /** The User-Agent header, cut to MAX_USER_AGENT_LENGTH; absent when there is none. */
  userAgent?: string;
  /** The keyhold-client header when it has the `name/version` form; otherwise absent (ignored, not refused). */
  client?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Where the request came from; set by installRequestOrigin's onRequest hook before any route's own. */
    origin: RequestOrigin;
  }
}

/** Sets request.origin on every request; call before any route is added. */
export function installRequestOrigin(app: FastifyInstance, settings: ClientAddressSettings): void {
  const proxies = new TrustedProxies(settings);
  app.decorateRequest('origin', null as unknown as RequestOrigin);
  app.addHook('onRequest', async (request) => {
    const { 'user-agent': agent, [CLIENT_HEADER]: client } = request.headers;
    request.origin = {
      clientAddress: proxies.clientAddress(request.ip, request.headers),
      ...(agent !== undefined && agent !== '' && { userAgent: agent.slice(0, MAX_USER_AGENT_LENGTH) }),
      ...(typeof client === 'string' && CLIENT_PATTERN.test(client) && { client }),
    };
  });
}
