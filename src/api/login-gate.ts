// The one way the routes that take a secret (token, check, change-secret) check it: through the
// login throttle, keyed by the client address fastify reports (request.ip: the socket's peer; no
// proxy header is trusted). Every refusal reaches the client as the same KH_ERR_AUTH_FAILED; its
// real reason goes to the log (with the request id, id and address) and to
// keyhold_auth_failures_total{reason}.
import type { FastifyRequest } from 'fastify';
import type { Entity } from 'keyhold-plugin-sdk';
import { Counter, type Registry } from 'prom-client';
import { AUTH_FAILURE_REASONS, isAuthFailed } from '../identity/auth-failure.js';
import type { LoginThrottle } from '../identity/login-throttle.js';
import type { IdentityOperations } from '../identity/operations.js';
import { requestInfo } from './access.js';

export class LoginGate {
  private readonly failures: Counter<'reason'>;

  constructor(
    private readonly identity: IdentityOperations,
    private readonly throttle: LoginThrottle,
    registry: Registry,
  ) {
    this.failures = new Counter({ name: 'keyhold_auth_failures_total', help: 'Refused authentications by reason (the client gets the same answer for every reason)', labelNames: ['reason'], registers: [registry] });
    // Every reason is a series from the start, so a rate() over it works before its first failure.
    for (const reason of AUTH_FAILURE_REASONS) this.failures.inc({ reason }, 0);
  }

  /** identity.authCheck behind the throttle; a refusal is logged and counted, then thrown on as it is. */
  async authCheck(request: FastifyRequest, id: string, secret: string): Promise<Entity> {
    try {
      return await this.throttle.attempt(id, request.ip, () => this.identity.authCheck(requestInfo(request), id, secret));
    } catch (err) {
      if (isAuthFailed(err)) {
        this.failures.inc({ reason: err.reason });
        // A soft lock beginning is worth a warning; single refusals are routine.
        const level = err.logDetail.softLocked ? 'warn' : 'info';
        request.log[level]({ entity: id, address: request.ip, reason: err.reason, detail: err.logDetail }, `authentication of "${id}" from ${request.ip} refused: ${err.reason}`);
      }
      throw err;
    }
  }
}
