// The `forwardAuth:` settings (read in src/config.ts, documented in docs/configuration.md and
// docs/forward-auth.md): the challenge's realm, the identity headers' names, the named access
// rules and the verified-credentials cache (which proxies may forward a client address is the
// `api:` section's, client-address.ts). The parsers here check one raw value each and throw an Error saying what is expected.
import { CAPABILITIES, type Capability } from 'keyhold-plugin-sdk';
import { MAX_NAME_LENGTH } from '../identity/identity.js';
import { didYouMean } from '../suggest.js';

/** What an entity must have to pass: one of `groups` (when any are listed) and every one of `capabilities`. */
export interface AccessRule {
  groups: string[];
  capabilities: Capability[];
}

export interface ForwardAuthSettings {
  /** The realm of the `WWW-Authenticate: Basic` challenge (browsers show it in their login dialog). */
  realm: string;
  /** Names of the identity headers of an allowing answer; '' leaves one out. */
  headers: { entity: string; groups: string; capabilities: string };
  /** Named rules a sub-request picks with `?rule=` (or the X-Keyhold-Rule header). */
  rules: Record<string, AccessRule>;
  /** The verified-credentials cache; ttlMs 0: no cache. */
  cache: { ttlMs: number; maxEntries: number };
}

/** Rule names: safe in a URL, a header and a metric label. */
export const RULE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
const RULE_NAME = new RegExp(RULE_NAME_PATTERN);
/** An HTTP header name (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function describe(raw: unknown): string {
  return raw === null ? 'null' : Array.isArray(raw) ? 'a list' : typeof raw === 'object' ? 'a mapping' : JSON.stringify(raw);
}

/** Printable ASCII without quotes or backslashes, so it goes into the challenge as it is. */
export function parseRealm(raw: unknown): string {
  if (typeof raw !== 'string' || !/^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,100}$/.test(raw))
    throw new Error(`expected 1 to 100 printable ASCII characters without " or \\, got ${describe(raw)}`);
  return raw;
}

/** A header name, or '' to leave the header out. */
export function parseHeaderName(raw: unknown): string {
  if (typeof raw !== 'string' || (raw !== '' && !HEADER_NAME.test(raw)))
    throw new Error(`expected an HTTP header name (letters, digits and -), or "" to leave it out, got ${describe(raw)}`);
  return raw;
}

function groupList(raw: unknown, where: string): string[] {
  const ok =
    Array.isArray(raw) &&
    raw.every((g) => typeof g === 'string' && g.length > 0 && [...g].length <= MAX_NAME_LENGTH && !/[\s\p{Cc}]/u.test(g));
  if (!ok) throw new Error(`${where}: expected a list of group names, got ${describe(raw)}`);
  return raw as string[];
}

function capabilityList(raw: unknown, where: string): Capability[] {
  const list = Array.isArray(raw) ? raw : [];
  const unknown = list.find((c) => !(CAPABILITIES as readonly unknown[]).includes(c));
  if (!Array.isArray(raw) || unknown !== undefined)
    throw new Error(`${where}: expected a list of capabilities from ${CAPABILITIES.join(', ')}, got ${describe(unknown ?? raw)}`);
  return raw as Capability[];
}

/** `rules:` a mapping of rule name → {groups?, capabilities?}. */
export function parseRules(raw: unknown): Record<string, AccessRule> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new Error(`expected a mapping of rule names to {groups, capabilities}, got ${describe(raw)}`);
  const rules: Record<string, AccessRule> = {};
  for (const [name, body] of Object.entries(raw)) {
    if (!RULE_NAME.test(name))
      throw new Error(`rule name ${JSON.stringify(name)}: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
    if (body === null || typeof body !== 'object' || Array.isArray(body))
      throw new Error(`${name}: expected a mapping with groups and/or capabilities, got ${describe(body)}`);
    for (const key of Object.keys(body)) {
      if (key !== 'groups' && key !== 'capabilities')
        throw new Error(`${name}.${key}: unknown key${didYouMean(key, ['groups', 'capabilities'])}; expected groups, capabilities`);
    }
    const { groups, capabilities } = body as { groups?: unknown; capabilities?: unknown };
    rules[name] = {
      groups: groups === undefined ? [] : groupList(groups, `${name}.groups`),
      capabilities: capabilities === undefined ? [] : capabilityList(capabilities, `${name}.capabilities`),
    };
  }
  return rules;
}
