// What a forward-auth sub-request asks, read without I/O: the end user's credentials from the
// Authorization header (Basic id:secret, RFC 7617 with UTF-8, or a Bearer token), and the access
// conditions an entity's profile is held against (one of some groups, each of some capabilities).
import type { Capability } from 'keyhold-plugin-sdk';
import { KeyholdError } from '../errors.js';
import type { AccessProfile } from '../identity/access-profile.js';
import { grants } from './access.js';
import type { AccessRule } from './forward-auth-settings.js';

export type Presented = { scheme: 'basic'; id: string; secret: string } | { scheme: 'bearer'; token: string };

/** One condition of an access rule: in one of `groups`, or holding `capability`. */
export type Condition = { groups: readonly string[] } | { capability: Capability };

const utf8 = new TextDecoder('utf-8', { fatal: true });

function unauthenticated(problem: string): KeyholdError {
  return new KeyholdError('KH_ERR_UNAUTHENTICATED', `${problem}; send Authorization: Basic base64(id:secret), or Bearer <token>`);
}

/** The credentials in an Authorization header; throws KH_ERR_UNAUTHENTICATED saying what is missing or malformed. */
export function parseAuthorization(header: string | undefined): Presented {
  if (header === undefined || header.trim() === '') throw unauthenticated('no credentials');
  const [, scheme, value] = /^\s*(\S+)(?:\s+(.*?))?\s*$/.exec(header) ?? [];
  if (/^bearer$/i.test(scheme ?? '') && value && !/\s/.test(value)) return { scheme: 'bearer', token: value };
  if (!/^basic$/i.test(scheme ?? '')) throw unauthenticated(`the Authorization scheme is not Basic or Bearer`);
  if (!value || !/^[A-Za-z0-9+/]+={0,2}$/.test(value)) throw unauthenticated('the Basic credentials are not base64');
  let text: string;
  try {
    text = utf8.decode(Buffer.from(value, 'base64'));
  } catch {
    throw unauthenticated('the Basic credentials are not UTF-8 text');
  }
  const colon = text.indexOf(':');
  if (colon <= 0 || colon === text.length - 1) throw unauthenticated('the Basic credentials need an id and a secret, separated by ":"');
  return { scheme: 'basic', id: text.slice(0, colon), secret: text.slice(colon + 1) };
}

/** A named rule as conditions: one of its groups (when it lists any), and each of its capabilities. */
export function describeRule(rule: AccessRule): Condition[] {
  return [...(rule.groups.length > 0 ? [{ groups: rule.groups }] : []), ...rule.capabilities.map((capability) => ({ capability }))];
}

/** The first condition `profile` does not meet, said for the log; undefined when it meets them all. GLOBAL_ROOT holds every capability. */
export function unmetCondition(conditions: readonly Condition[], profile: AccessProfile): string | undefined {
  for (const condition of conditions) {
    if ('capability' in condition) {
      if (!grants(profile.capabilities, condition.capability)) return `lacks the capability ${condition.capability}`;
    } else if (!condition.groups.some((g) => profile.groups.includes(g))) {
      return `in none of the groups ${condition.groups.join(', ')}`;
    }
  }
  return undefined;
}
