// Which entities a verify plugin claims (docs/protocol.md "verify"): a few rules over what the
// entity already carries, declared by the plugin at its handshake and evaluated by the host on
// every login. Parsed and matched here, once, for the host and for plugins that check their
// settings in configure().
import type { Entity } from './model.js';

/**
 * One claim rule:
 *   `*`              every entity
 *   `group:NAME`     members of group NAME, directly or through expansions
 *   `kv:KEY=VALUE`   entities whose kv KEY holds VALUE
 *   `meta:KEY=VALUE` entities with the untyped metadata entry `KEY:VALUE`
 *   `marker`         entities an operator marked for this plugin: an untyped metadata entry with the
 *                    key `verify.<plugin name>` (any value, e.g. `verify.totp:on`)
 */
export type ClaimRule =
  | { kind: 'all' }
  | { kind: 'group'; group: string }
  | { kind: 'kv'; key: string; value: string }
  | { kind: 'meta'; key: string; value: string }
  | { kind: 'marker' };

const FORMS = '"*", "group:NAME", "kv:KEY=VALUE", "meta:KEY=VALUE" or "marker"';

/** The untyped metadata key of the `marker` rule: an entry with this key marks an entity for the plugin called `plugin`. */
export function verifyMarkerKey(plugin: string): string {
  return `verify.${plugin}`;
}

/** Parses one rule; throws an Error saying what is wrong and which forms exist. */
export function parseClaimRule(text: string): ClaimRule {
  if (text === '*') return { kind: 'all' };
  if (text === 'marker') return { kind: 'marker' };
  const colon = text.indexOf(':');
  const kind = text.slice(0, colon);
  const rest = text.slice(colon + 1);
  if (colon > 0 && kind === 'group' && rest !== '') return { kind: 'group', group: rest };
  const equals = rest.indexOf('=');
  if (colon > 0 && (kind === 'kv' || kind === 'meta') && equals > 0 && equals < rest.length - 1)
    return { kind, key: rest.slice(0, equals), value: rest.slice(equals + 1) };
  throw new Error(`claim rule ${JSON.stringify(text)} is not one keyhold knows; use ${FORMS}`);
}

/** True when a rule needs the entity's groups through expansions (the host then reads them). */
export function needsGroups(rules: readonly ClaimRule[]): boolean {
  return rules.some((r) => r.kind === 'group');
}

/** Whether `plugin`'s `rules` claim `entity`; `groups`: every group it is in, expansions resolved (only read by group rules). */
export function claims(rules: readonly ClaimRule[], plugin: string, entity: Entity, groups: readonly string[]): boolean {
  return rules.some((rule) => {
    switch (rule.kind) {
      case 'all':
        return true;
      case 'group':
        return groups.includes(rule.group);
      case 'kv':
        return entity.meta.kv[rule.key]?.values.includes(rule.value) ?? false;
      case 'meta':
        return entity.meta.untypedMeta.includes(`${rule.key}:${rule.value}`);
      case 'marker':
        return entity.meta.untypedMeta.some((entry) => entry.startsWith(`${verifyMarkerKey(plugin)}:`));
    }
  });
}
