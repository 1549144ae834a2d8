// /v1/forward-auth: keyhold as the external authentication service of a reverse proxy (nginx
// auth_request, Traefik forwardAuth, Caddy forward_auth, Envoy ext_authz in HTTP mode). The proxy
// sends a sub-request, any method, carrying the end user's Authorization header: Basic
// credentials go through AuthCheck (its plugins, fail2lock, the login throttle) behind the
// verified-credentials cache, Bearer tokens through token validation with revocation. The access
// rule comes with the sub-request (docs/forward-auth.md). Answers: 200 with identity headers for
// the upstream, 401 with a Basic challenge when credentials are missing or refused, 403 when the
// entity does not meet the rule. Anonymous at the fastify level: the credentials are the end user's.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CAPABILITIES, type Capability } from 'keyhold-plugin-sdk';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { isKeyholdError, KeyholdError } from '../errors.js';
import { loadAccessProfile, type AccessProfile } from '../identity/access-profile.js';
import { isAuthFailed } from '../identity/auth-failure.js';
import { MAX_NAME_LENGTH } from '../identity/identity.js';
import type { RequestInfo } from '../lifecycle/engine.js';
import type { Store } from '../store/store.js';
import { requestInfo, type Access } from './access.js';
import { CredentialCache } from './credential-cache.js';
import { describeRule, parseAuthorization, unmetCondition, type Condition, type Presented } from './forward-auth-request.js';
import { RULE_NAME_PATTERN, type ForwardAuthSettings } from './forward-auth-settings.js';

const FORWARD_AUTH_PATH = '/v1/forward-auth';
/** Where a proxy that cannot set the sub-request's query (Envoy's ext_authz appends the original path) names the rule. */
const RULE_HEADER = 'x-keyhold-rule';

export interface ForwardAuthDeps {
  settings: ForwardAuthSettings;
  access: Access;
  /**
   * The AuthCheck of Basic credentials, with the end user's address (as a trusted proxy forwarded
   * it) in `info.clientAddress`: the login gate's (app.ts), so the throttle and its log and metric
   * apply to web logins too.
   */
  authCheck(info: RequestInfo, id: string, secret: string): Promise<unknown>;
  store: Pick<Store, 'reader' | 'changeCounter'>;
  metrics: Registry;
  logger: Logger;
}

/** Refusals of Basic credentials; the client gets one answer for all, the log the real code. */
const REFUSED_CREDENTIALS = new Set(['KH_ERR_AUTH_FAILED', 'KH_ERR_PLUGIN_VETO']);
/** Refusals of a bearer token, answered as they are. */
const REFUSED_TOKEN = new Set(['KH_ERR_UNAUTHENTICATED', 'KH_ERR_TOKEN_EXPIRED', 'KH_ERR_TOKEN_REVOKED']);

type Via = 'cache' | 'authcheck' | 'token';
type Decision = 'allowed' | 'unauthenticated' | 'forbidden';
type Authenticated = { profile: AccessProfile; via: Via };
/** `reason`: the code behind the refusal, for the log; `refused`: what the client gets. */
type Refused = { refused: KeyholdError; reason: string; entity?: string };

/** One answer for every refusal of Basic credentials (unknown id, wrong secret, locked, a plugin's veto): none tells which. */
const AUTH_FAILED = 'unknown entity or wrong secret';

const nameSchema = { type: 'string', minLength: 1, maxLength: MAX_NAME_LENGTH } as const;
const capabilitySchema = { type: 'string', enum: [...CAPABILITIES] } as const;
const querySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    rule: { type: 'string', pattern: RULE_NAME_PATTERN, description: 'a rule named in forwardAuth.rules' },
    group: {
      anyOf: [nameSchema, { type: 'array', items: nameSchema, maxItems: 64 }],
      description: 'the entity must be in one of these groups (directly or through expansions)',
    },
    capability: {
      anyOf: [capabilitySchema, { type: 'array', items: capabilitySchema, maxItems: CAPABILITIES.length }],
      description: 'the entity must hold every one of these (GLOBAL_ROOT holds all)',
    },
  },
} as const;

interface Query {
  rule?: string;
  group?: string | string[];
  capability?: Capability | Capability[];
}

/** RFC 4918 and its extensions (DeltaV, CalDAV, DASL), as Node's HTTP parser accepts them. */
const WEBDAV_METHODS = ['PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'REPORT', 'SEARCH', 'MKCALENDAR'];

const listOf = <T>(value: T | T[] | undefined): T[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

/** Printable ASCII but '%' and ',' as it is; anything else percent-encoded as UTF-8, so any name fits a header and a list splits on ','. */
function headerValue(names: readonly string[]): string {
  return names
    .map((name) =>
      name.replace(/[^\x21-\x24\x26-\x2b\x2d-\x7e]/gu, (c) =>
        [...Buffer.from(c, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
      ),
    )
    .join(',');
}

export function forwardAuthRoutes(app: FastifyInstance, deps: ForwardAuthDeps): void {
  const { settings, access, store } = deps;
  const cache = new CredentialCache(store, settings.cache);
  const challenge = `Basic realm="${settings.realm}", charset="UTF-8"`;
  const log = deps.logger.child({ component: 'forward-auth' });
  const decisions = new Counter({
    name: 'keyhold_forward_auth_decisions_total',
    help: 'Forward-auth answers by rule: allowed (200), unauthenticated (401), forbidden (403)',
    labelNames: ['rule', 'decision'],
    registers: [deps.metrics],
  });
  const lookups = new Counter({
    name: 'keyhold_forward_auth_cache_lookups_total',
    help: 'Basic credentials checked by forward auth, by rule: hit (no AuthCheck of its own) or miss',
    labelNames: ['rule', 'result'],
    registers: [deps.metrics],
  });
  new Gauge({
    name: 'keyhold_forward_auth_cache_entries',
    help: 'Verified credentials held by the forward-auth cache',
    registers: [deps.metrics],
    collect() {
      this.set(cache.size);
    },
  });

  /** The entity behind the Authorization header and how it was verified, or why it was refused (401); other errors are thrown. */
  async function authenticate(header: string | undefined, info: RequestInfo, label: string): Promise<Authenticated | Refused> {
    let presented: Presented;
    try {
      presented = parseAuthorization(header);
      if (presented.scheme === 'bearer') {
        const claims = await access.verifyToken(presented.token);
        const profile = await loadAccessProfile(store.reader, claims.sub);
        if (!profile) throw new KeyholdError('KH_ERR_TOKEN_REVOKED', 'this token has been revoked; log in again');
        return { profile, via: 'token' };
      }
    } catch (err) {
      if (isKeyholdError(err) && REFUSED_TOKEN.has(err.code)) return { refused: err, reason: err.code };
      throw err;
    }
    const { id, secret } = presented;
    try {
      const { profile, cached } = await cache.check(
        id,
        secret,
        async () => (await deps.authCheck(info, id, secret), loadAccessProfile(store.reader, id)),
      );
      if (cache.enabled) lookups.inc({ rule: label, result: cached ? 'hit' : 'miss' });
      // Destroyed right after its check.
      if (!profile) return { refused: new KeyholdError('KH_ERR_AUTH_FAILED', AUTH_FAILED), reason: 'KH_ERR_ENTITY_NOT_FOUND', entity: id };
      return { profile, via: cached ? 'cache' : 'authcheck' };
    } catch (err) {
      if (!isKeyholdError(err) || !REFUSED_CREDENTIALS.has(err.code)) throw err;
      cache.forget(id);
      return {
        refused: new KeyholdError('KH_ERR_AUTH_FAILED', AUTH_FAILED),
        reason: isAuthFailed(err) ? err.reason : err.code,
        entity: id,
      };
    }
  }

  function decide(request: FastifyRequest, decision: Decision, label: string, fields: Record<string, unknown>, message: string): void {
    decisions.inc({ rule: label, decision });
    // Refusals are worth reading (a wrong password, a denied page); allowed answers come with every asset of every page.
    log[decision === 'allowed' ? 'debug' : 'info'](
      { reqId: request.id, rule: label, decision, ...fields },
      `forward-auth, rule ${label}: ${message}`,
    );
  }

  async function handle(request: FastifyRequest, reply: FastifyReply, conditions: Condition[], label: string): Promise<FastifyReply> {
    const client = request.origin.clientAddress;
    const outcome = await authenticate(request.headers.authorization, { ...requestInfo(request), source: 'forward-auth' }, label);
    if ('refused' in outcome) {
      const { refused, reason, entity } = outcome;
      decide(
        request,
        'unauthenticated',
        label,
        { client, entity, reason },
        `refused ${entity === undefined ? 'a request' : `"${entity}"`} from ${client}: ${reason}`,
      );
      return reply.code(401).header('www-authenticate', challenge).send(refused.toJSON());
    }
    const { profile, via } = outcome;
    const unmet = unmetCondition(conditions, profile);
    if (unmet) {
      decide(request, 'forbidden', label, { client, entity: profile.id, via, unmet }, `"${profile.id}" from ${client} is ${unmet}`);
      // The end user may see this body (Traefik and Caddy pass it on): it names no group.
      return reply
        .code(403)
        .send(
          new KeyholdError(
            'KH_ERR_FORBIDDEN',
            `"${profile.id}" may not use this site: ${unmet.startsWith('lacks') ? unmet : 'it is not in a group this site needs'}`,
          ).toJSON(),
        );
    }
    decide(request, 'allowed', label, { client, entity: profile.id, via }, `allowed "${profile.id}" from ${client} (${via})`);
    const { entity, groups, capabilities } = settings.headers;
    if (entity) void reply.header(entity, headerValue([profile.id]));
    if (groups) void reply.header(groups, headerValue(profile.groups));
    if (capabilities) void reply.header(capabilities, profile.capabilities.join(','));
    return reply.code(200).send();
  }

  /** The conditions of the named rule; an unknown name is the proxy configuration's mistake, said as such. */
  function named(rule: string | undefined, where: string): Condition[] {
    if (rule === undefined) return [];
    const found = Object.hasOwn(settings.rules, rule) ? settings.rules[rule] : undefined;
    if (!found) {
      const known = Object.keys(settings.rules);
      throw new KeyholdError(
        'KH_ERR_INVALID_INPUT',
        `${where}: no rule ${JSON.stringify(rule)} in forwardAuth.rules; ${known.length ? `the rules are ${known.join(', ')}` : 'keyhold.yaml defines none'}`,
        { in: where, problems: [{ path: 'rule', problem: 'unknown rule' }] },
      );
    }
    return describeRule(found);
  }

  const tags = ['auth'];
  // Proxies send the sub-request with whatever method they like (Envoy: the original one, so a
  // WebDAV app's too): every method is served; GET stands for them all in the OpenAPI document,
  // and brings HEAD along. fastify knows WebDAV's methods only once told (no other route has them).
  for (const method of WEBDAV_METHODS) if (!app.supportedMethods.includes(method)) app.addHttpMethod(method, { hasBody: true });
  const otherMethods = app.supportedMethods.filter((m) => m !== 'GET' && m !== 'HEAD');
  void app.register(async (scope) => {
    // A proxy may pass the original request's body along: it is read (within bodyLimit) and ignored, whatever its type.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, _body, done) => done(null, undefined));

    const exact = async (request: FastifyRequest<{ Querystring: Query }>, reply: FastifyReply) => {
      const { rule, group, capability } = request.query;
      const groups = listOf(group);
      const conditions = [
        ...named(rule, 'querystring'),
        ...(groups.length ? [{ groups }] : []),
        ...listOf(capability).map((c) => ({ capability: c })),
      ];
      return handle(request, reply, conditions, rule ?? (conditions.length ? '(inline)' : '(none)'));
    };
    const summary =
      'Forward authentication for reverse proxies (any method): 200 with identity headers, 401 with a Basic challenge, 403 when the rule is not met (docs/forward-auth.md)';
    scope.get(FORWARD_AUTH_PATH, { schema: { tags, security: [], summary, querystring: querySchema } }, exact);
    scope.route({ method: otherMethods, url: FORWARD_AUTH_PATH, schema: { hide: true, querystring: querySchema }, handler: exact });

    // Envoy appends the original path (and query) to its path_prefix: both are the end user's and
    // are ignored here; the rule comes in the X-Keyhold-Rule header (headers_to_add).
    scope.route({
      method: ['GET', ...otherMethods],
      url: `${FORWARD_AUTH_PATH}/*`,
      // The query is the end user's: not checked, not refused (src/api/request-input.ts).
      config: { foreignQuery: true },
      schema: { hide: true },
      handler: async (request, reply) => {
        const header = request.headers[RULE_HEADER];
        const rule = typeof header === 'string' && header !== '' ? header : undefined;
        return handle(request, reply, named(rule, 'header X-Keyhold-Rule'), rule ?? '(none)');
      },
    });
  });
}
