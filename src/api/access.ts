// Who may do what. Every route declares its need as an onRequest hook (so an anonymous or
// unprivileged request is refused before its body is even parsed):
//   - reads need a valid token;
//   - each mutation needs one capability, and GLOBAL_ROOT satisfies every capability;
//   - a few mutations also admit a second kind of caller: the entity itself (its own keys) or
//     a member of the group named by the group's `managedBy` (that group's memberships).
// `allows` is the single capability rule; everything else here builds on it. The rules that
// depend on the data (protected subjects, the last GLOBAL_ROOT holder) are the identity layer's,
// checked inside the write transaction (src/identity/protection.ts), alternatives included.
import type { FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import type { Capability } from 'keyhold-plugin-sdk';
import { KeyholdError } from '../errors.js';
import type { IdentityOperations } from '../identity/operations.js';
import type { RequestInfo } from '../lifecycle/engine.js';
import type { TokenRevocation } from './revocation.js';
import type { TokenClaims, TokenService } from './tokens.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified token of the caller; set by the route's access hook, null on anonymous routes. */
    caller: TokenClaims | null;
    /** When the request arrived (epoch ms): its lifecycle deadline counts from here, not from when it got its turn. */
    arrivedAt: number;
  }
}

/** A second way to be allowed, checked only when the caller lacks the capability. */
export type Alternative = 'self' | 'group-manager';

/** The capability rule: `held` has `capability`, or GLOBAL_ROOT, which satisfies every one. */
export function grants(held: readonly Capability[], capability: Capability): boolean {
  return held.includes('GLOBAL_ROOT') || held.includes(capability);
}

/** The capability rule for a caller: its claims carry `capability`, or GLOBAL_ROOT. */
export function allows(caller: TokenClaims, capability: Capability): boolean {
  return grants(caller.caps, capability);
}

function forbidden(caller: TokenClaims, capability: Capability): KeyholdError {
  return new KeyholdError('KH_ERR_FORBIDDEN', `this needs the ${capability} capability, which ${caller.sub} does not have`, {
    needed: [capability],
  });
}

/** Throws KH_ERR_FORBIDDEN unless `allows(caller, capability)`. */
export function demand(caller: TokenClaims, capability: Capability): void {
  if (!allows(caller, capability)) throw forbidden(caller, capability);
}

/**
 * The request's identity for the lifecycle engine, hook contexts and the identity layer's rules
 * (what its token carries), and where it came from (request-origin.ts). A request without a token
 * that reaches the lifecycle is a login (its id and secret in the body); forward auth says its own source.
 */
export function requestInfo(request: FastifyRequest): RequestInfo {
  return {
    requestId: request.id,
    caller: request.caller?.sub ?? null,
    capabilities: request.caller?.caps ?? [],
    source: request.caller ? 'api' : 'login',
    ...request.origin,
    arrivedAt: request.arrivedAt,
  };
}

export class Access {
  constructor(
    private readonly tokens: TokenService,
    private readonly identity: IdentityOperations,
    private readonly revocation: TokenRevocation,
  ) {}

  /** The claims of a token valid now: by itself and not revoked; throws KH_ERR_UNAUTHENTICATED / KH_ERR_TOKEN_EXPIRED / KH_ERR_TOKEN_REVOKED. */
  async verifyToken(token: string): Promise<TokenClaims> {
    const claims = await this.tokens.verify(token);
    await this.revocation.check(claims);
    return claims;
  }

  /** Verifies the bearer token and returns its claims (see verifyToken). */
  async authenticate(request: FastifyRequest): Promise<TokenClaims> {
    const header = request.headers.authorization;
    const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match)
      throw new KeyholdError(
        'KH_ERR_UNAUTHENTICATED',
        'this needs a token (Authorization: Bearer …); get one with `keyhold auth login` or POST /v1/auth/token',
      );
    return this.verifyToken(match[1]!);
  }

  /** Route hook: any valid token. */
  readonly token: onRequestAsyncHookHandler = async (request) => {
    request.caller = await this.authenticate(request);
  };

  /** Route hook: a valid token carrying `capability`, or (when given) the alternative. */
  need(capability: Capability, alternative?: Alternative): onRequestAsyncHookHandler {
    return async (request) => {
      const caller = await this.authenticate(request);
      request.caller = caller;
      if (allows(caller, capability)) return;
      if (alternative && (await this.admits(alternative, caller, request))) return;
      throw forbidden(caller, capability);
    };
  }

  private async admits(alternative: Alternative, caller: TokenClaims, request: FastifyRequest): Promise<boolean> {
    const params = request.params as Record<string, string | undefined>;
    if (alternative === 'self') return params.id === caller.sub;
    const name = params.name;
    if (name === undefined) return false;
    const group = await this.identity.groupInfo(name).catch(() => undefined);
    if (!group?.managedBy) return false;
    return (await this.identity.groupMembers(group.managedBy)).includes(caller.sub);
  }
}
