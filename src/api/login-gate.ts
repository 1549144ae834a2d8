// The one way the routes that take a secret (token, check, change-secret, and forward-auth's Basic
// credentials) check it: through the login throttle, keyed by the request's client address
// (RequestInfo.clientAddress: the socket's peer, or the end user's address a trusted proxy
// forwarded, request-origin.ts). Every refusal reaches the client as the same KH_ERR_AUTH_FAILED; its
// real reason goes to the log (with the request id, id and address) and to
// keyhold_auth_failures_total{reason}.
import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import type { Entity } from 'keyhold-plugin-sdk';
import { Counter, type Registry } from 'prom-client';
import { AUTH_FAILURE_REASONS, isAuthFailed } from '../identity/auth-failure.js';
import type { LoginThrottle } from '../identity/login-throttle.js';
import type { IdentityOperations } from '../identity/operations.js';
import type { RequestInfo } from '../lifecycle/engine.js';
import { requestInfo } from './access.js';

export class LoginGate {
  private readonly failures: Counter<'reason'>;

  constructor(
    private readonly identity: IdentityOperations,
    private readonly throttle: LoginThrottle,
    registry: Registry,
  ) {
    this.failures = new Counter({
      name: 'keyhold_auth_failures_total',
      help: 'Refused authentications by reason (the client gets the same answer for every reason)',
      labelNames: ['reason'],
      registers: [registry],
    });
    // Every reason is a series from the start, so a rate() over it works before its first failure.
    for (const reason of AUTH_FAILURE_REASONS) this.failures.inc({ reason }, 0);
  }

  /** identity.authCheck behind the throttle, for a route that takes credentials in its body. */
  authCheck(request: FastifyRequest, id: string, secret: string): Promise<Entity> {
    return this.check(requestInfo(request), request.log, id, secret);
  }

  /** The check itself; a refusal is logged and counted, then thrown on as it is. */
  async check(info: RequestInfo, log: FastifyBaseLogger, id: string, secret: string): Promise<Entity> {
    const address = info.clientAddress ?? 'unknown';
    try {
      return await this.throttle.attempt(id, address, () => this.identity.authCheck(info, id, secret));
    } catch (err) {
      if (isAuthFailed(err)) {
        this.failures.inc({ reason: err.reason });
        // A soft lock beginning is worth a warning; single refusals are routine.
        const level = err.logDetail.softLocked ? 'warn' : 'info';
        log[level](
          { reqId: info.requestId, entity: id, address, reason: err.reason, detail: err.logDetail },
          `authentication of "${id}" from ${address} refused: ${err.reason}`,
        );
      }
      throw err;
    }
  }
}
