// Every operation refused for bad input: each a KeyholdError with its stable code, and the
// store read back whole afterwards exactly as it was before.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ErrorCode } from '../../src/errors.js';
import type { Identity } from '../../src/identity/identity.js';
import { INFO, openHarness, refusedWithoutChange, type Harness } from '../support/identity-harness.js';
import { forEachStore } from '../support/stores.js';

forEachStore((_kind, openStore) => {
  interface BadCase {
    what: string;
    attempt: (identity: Identity) => Promise<unknown>;
    code: ErrorCode;
    message?: RegExp;
  }

  const INVALID_NAMES: [string, string, RegExp][] = [
    ['empty', '', /it is empty/],
    ['a space', 'a b', /whitespace/],
    ['a tab', 'a\tb', /whitespace/],
    ['a non-breaking space', 'a\u00a0b', /whitespace/],
    ['a control character', 'a\u0007b', /control character/],
    ['a DEL character', 'a\u007fb', /control character/],
    ['129 characters', 'x'.repeat(129), /129 characters long/],
    ["a leading '-'", '-rf', /starts with '-'/],
    // Code points that hide or disguise text, or mean nothing: each refused with its name or number.
    ['a right-to-left override', 'a\u202eb', /U\+202E RIGHT-TO-LEFT OVERRIDE, a format character/],
    ['a zero-width space', 'a\u200bb', /U\+200B ZERO WIDTH SPACE, a format character/],
    ['a left-to-right isolate', 'a\u2066b', /U\+2066 LEFT-TO-RIGHT ISOLATE, a format character/],
    ['a pop directional isolate', 'a\u2069b', /U\+2069 POP DIRECTIONAL ISOLATE, a format character/],
    ['a byte order mark', '\ufeffa', /U\+FEFF ZERO WIDTH NO-BREAK SPACE \(byte order mark\), a format character/],
    ['a soft hyphen', 'a\u00adb', /U\+00AD SOFT HYPHEN, a format character/],
    ['a lone surrogate', 'a\ud800b', /U\+D800, a lone surrogate/],
    ['a private-use character', 'a\ue000b', /U\+E000, a private-use character/],
    ['an unassigned code point', 'a\u0378b', /U\+0378, an unassigned code point/],
    ['a noncharacter', 'a\ufdd0b', /U\+FDD0, an unassigned code point or a noncharacter/],
    ['a line separator', 'a\u2028b', /U\+2028 LINE SEPARATOR, a line or paragraph separator/],
    ['a paragraph separator', 'a\u2029b', /U\+2029 PARAGRAPH SEPARATOR, a line or paragraph separator/],
    ['the replacement character', 'a\ufffdb', /U\+FFFD REPLACEMENT CHARACTER, the replacement character/],
  ];

  /** Keys JavaScript gives a meaning to: a kv map keyed by one would lose it or change its prototype. */
  const RESERVED_KEYS = ['__proto__', 'constructor', 'prototype'];

  const RULE =
    /1 to 128 characters, no whitespace, and no control, format \(invisible or bidi\), private-use, unassigned or surrogate code points nor U\+FFFD, not starting with '-'/;

  const CASES: BadCase[] = [
    // Names on create
    ...INVALID_NAMES.flatMap(([what, name, message]): BadCase[] => [
      { what: `entity id with ${what}`, attempt: (i) => i.createEntity(INFO, { id: name }), code: 'KH_ERR_INVALID_NAME', message },
      { what: `group name with ${what}`, attempt: (i) => i.createGroup(INFO, { name }), code: 'KH_ERR_INVALID_NAME', message },
    ]),
    { what: 'the name rule is stated', attempt: (i) => i.createEntity(INFO, { id: 'a b' }), code: 'KH_ERR_INVALID_NAME', message: RULE },
    // kv and untyped-metadata keys follow the same rule
    ...INVALID_NAMES.flatMap(([what, key, message]): BadCase[] => [
      {
        what: `entity kv key with ${what}`,
        attempt: (i) => i.entityKv(INFO, 'alice', { action: 'add', key, values: ['x'] }),
        code: 'KH_ERR_INVALID_INPUT',
        message,
      },
      {
        what: `group kv key with ${what}`,
        attempt: (i) => i.groupKv(INFO, 'g1', { action: 'add', key, values: ['x'] }),
        code: 'KH_ERR_INVALID_INPUT',
        message,
      },
      {
        what: `untyped key with ${what}`,
        attempt: (i) => i.entityUntypedMeta(INFO, 'alice', { action: 'upsert', key, value: 'v' }),
        code: 'KH_ERR_INVALID_INPUT',
        message,
      },
    ]),
    ...RESERVED_KEYS.flatMap((key): BadCase[] => [
      {
        what: `entity kv key ${key}`,
        attempt: (i) => i.entityKv(INFO, 'alice', { action: 'add', key, values: ['x'] }),
        code: 'KH_ERR_INVALID_INPUT',
        message: /it is reserved/,
      },
      {
        what: `entity kv replace of ${key}`,
        attempt: (i) => i.entityKv(INFO, 'alice', { action: 'replace', key, values: ['x'] }),
        code: 'KH_ERR_INVALID_INPUT',
        message: /it is reserved/,
      },
      {
        what: `group kv key ${key}`,
        attempt: (i) => i.groupKv(INFO, 'g1', { action: 'add', key, values: ['x'] }),
        code: 'KH_ERR_INVALID_INPUT',
        message: /it is reserved/,
      },
      {
        what: `entity untyped key ${key}`,
        attempt: (i) => i.entityUntypedMeta(INFO, 'alice', { action: 'upsert', key, value: 'v' }),
        code: 'KH_ERR_INVALID_INPUT',
        message: /it is reserved/,
      },
      {
        what: `group untyped key ${key}`,
        attempt: (i) => i.groupUntypedMeta(INFO, 'g1', { action: 'upsert', key, value: 'v' }),
        code: 'KH_ERR_INVALID_INPUT',
        message: /it is reserved/,
      },
      {
        what: `entity id ${key}`,
        attempt: (i) => i.createEntity(INFO, { id: key }),
        code: 'KH_ERR_INVALID_NAME',
        message: /it is reserved/,
      },
      {
        what: `group name ${key}`,
        attempt: (i) => i.createGroup(INFO, { name: key }),
        code: 'KH_ERR_INVALID_NAME',
        message: /it is reserved/,
      },
    ]),

    // Entities
    { what: 'duplicate entity id', attempt: (i) => i.createEntity(INFO, { id: 'alice' }), code: 'KH_ERR_ENTITY_EXISTS' },
    { what: 'duplicate entity number', attempt: (i) => i.createEntity(INFO, { id: 'newcomer', number: 1 }), code: 'KH_ERR_NUMBER_TAKEN' },
    { what: 'negative entity number', attempt: (i) => i.createEntity(INFO, { id: 'newcomer', number: -5 }), code: 'KH_ERR_INVALID_INPUT' },
    {
      what: 'entity meta field that is not settable',
      attempt: (i) => i.createEntity(INFO, { id: 'newcomer', meta: { locked: true } as never }),
      code: 'KH_ERR_INVALID_INPUT',
    },
    { what: 'empty initial secret', attempt: (i) => i.createEntity(INFO, { id: 'newcomer', secret: '' }), code: 'KH_ERR_INVALID_INPUT' },
    { what: 'info of unknown entity', attempt: (i) => i.entityInfo('ghost'), code: 'KH_ERR_ENTITY_NOT_FOUND' },
    {
      what: 'meta of unknown entity',
      attempt: (i) => i.updateEntityMeta(INFO, 'ghost', { shell: '/bin/sh' }),
      code: 'KH_ERR_ENTITY_NOT_FOUND',
    },
    {
      what: 'meta patch with groups',
      attempt: (i) => i.updateEntityMeta(INFO, 'alice', { groups: ['g1'] } as never),
      code: 'KH_ERR_INVALID_INPUT',
    },
    {
      what: 'untyped meta of unknown entity',
      attempt: (i) => i.entityUntypedMeta(INFO, 'ghost', { action: 'upsert', key: 'k', value: 'v' }),
      code: 'KH_ERR_ENTITY_NOT_FOUND',
    },
    {
      what: "untyped key with ':'",
      attempt: (i) => i.entityUntypedMeta(INFO, 'alice', { action: 'upsert', key: 'a:b', value: 'v' }),
      code: 'KH_ERR_INVALID_INPUT',
    },
    {
      what: 'empty untyped key clearing everything',
      attempt: (i) => i.entityUntypedMeta(INFO, 'alice', { action: 'clear-fuzzy', key: '' }),
      code: 'KH_ERR_INVALID_INPUT',
    },
    {
      what: 'kv of unknown entity',
      attempt: (i) => i.entityKv(INFO, 'ghost', { action: 'add', key: 'k', values: [] }),
      code: 'KH_ERR_ENTITY_NOT_FOUND',
    },
    {
      what: 'kv add of an existing key',
      attempt: (i) => i.entityKv(INFO, 'alice', { action: 'add', key: 'phone', values: ['2'] }),
      code: 'KH_ERR_KV_KEY_EXISTS',
    },
    {
      what: 'kv replace of a missing key',
      attempt: (i) => i.entityKv(INFO, 'alice', { action: 'replace', key: 'fax', values: ['2'] }),
      code: 'KH_ERR_KV_KEY_NOT_FOUND',
    },
    {
      what: 'kv delete of a missing key',
      attempt: (i) => i.entityKv(INFO, 'alice', { action: 'delete', key: 'fax' }),
      code: 'KH_ERR_KV_KEY_NOT_FOUND',
    },
    {
      what: 'kv key with whitespace',
      attempt: (i) => i.entityKv(INFO, 'alice', { action: 'add', key: 'a b', values: [] }),
      code: 'KH_ERR_INVALID_INPUT',
    },
    { what: 'kv get of unknown entity', attempt: (i) => i.entityKvGet('ghost', 'phone'), code: 'KH_ERR_ENTITY_NOT_FOUND' },
    { what: 'kv get of a missing key', attempt: (i) => i.entityKvGet('alice', 'fax'), code: 'KH_ERR_KV_KEY_NOT_FOUND' },
    {
      what: 'keys of unknown entity',
      attempt: (i) => i.entityKeys(INFO, 'ghost', { action: 'add', value: 'ssh-ed25519 AAAA' }),
      code: 'KH_ERR_ENTITY_NOT_FOUND',
    },
    { what: 'blank key', attempt: (i) => i.entityKeys(INFO, 'alice', { action: 'add', value: '  ' }), code: 'KH_ERR_INVALID_INPUT' },
    {
      what: 'capabilities of unknown entity',
      attempt: (i) => i.entityCapabilities(INFO, 'ghost', { action: 'add', value: 'LOCK_ENTITY' }),
      code: 'KH_ERR_ENTITY_NOT_FOUND',
    },
    {
      what: 'unknown capability',
      attempt: (i) => i.entityCapabilities(INFO, 'alice', { action: 'add', value: 'ROOT' as never }),
      code: 'KH_ERR_INVALID_INPUT',
    },
    { what: 'lock of unknown entity', attempt: (i) => i.lockEntity(INFO, 'ghost'), code: 'KH_ERR_ENTITY_NOT_FOUND' },
    { what: 'unlock of unknown entity', attempt: (i) => i.unlockEntity(INFO, 'ghost'), code: 'KH_ERR_ENTITY_NOT_FOUND' },
    { what: 'destroy of unknown entity', attempt: (i) => i.destroyEntity(INFO, 'ghost'), code: 'KH_ERR_ENTITY_NOT_FOUND' },
    { what: 'secret of unknown entity', attempt: (i) => i.setSecret(INFO, 'ghost', 'pw'), code: 'KH_ERR_ENTITY_NOT_FOUND' },
    { what: 'empty secret', attempt: (i) => i.setSecret(INFO, 'alice', ''), code: 'KH_ERR_INVALID_INPUT' },
    { what: 'over-long secret', attempt: (i) => i.setSecret(INFO, 'alice', 'x'.repeat(1025)), code: 'KH_ERR_INVALID_INPUT' },
    { what: 'auth of unknown entity', attempt: (i) => i.authCheck(INFO, 'ghost', 'pw'), code: 'KH_ERR_AUTH_FAILED' },
    { what: 'auth with a wrong secret', attempt: (i) => i.authCheck(INFO, 'alice', 'wrong'), code: 'KH_ERR_AUTH_FAILED' },
    { what: 'groups of unknown entity', attempt: (i) => i.entityGroups('ghost', { indirect: true }), code: 'KH_ERR_ENTITY_NOT_FOUND' },
    { what: 'capabilities in effect of unknown entity', attempt: (i) => i.effectiveCapabilities('ghost'), code: 'KH_ERR_ENTITY_NOT_FOUND' },

    // Groups
    { what: 'duplicate group name', attempt: (i) => i.createGroup(INFO, { name: 'g1' }), code: 'KH_ERR_GROUP_EXISTS' },
    { what: 'duplicate group number', attempt: (i) => i.createGroup(INFO, { name: 'g9', number: 10 }), code: 'KH_ERR_NUMBER_TAKEN' },
    {
      what: 'group managed by an unknown group',
      attempt: (i) => i.createGroup(INFO, { name: 'g9', managedBy: 'nope' }),
      code: 'KH_ERR_GROUP_NOT_FOUND',
    },
    {
      what: 'group expanding an unknown group',
      attempt: (i) => i.createGroup(INFO, { name: 'g9', expansions: [{ mode: 'INCLUDE', group: 'nope' }] }),
      code: 'KH_ERR_GROUP_NOT_FOUND',
    },
    {
      what: 'group expanding itself',
      attempt: (i) => i.createGroup(INFO, { name: 'g9', expansions: [{ mode: 'INCLUDE', group: 'g9' }] }),
      code: 'KH_ERR_EXPANSION_CYCLE',
    },
    {
      what: 'group expanding one group twice',
      attempt: (i) =>
        i.createGroup(INFO, {
          name: 'g9',
          expansions: [
            { mode: 'INCLUDE', group: 'g1' },
            { mode: 'EXCLUDE', group: 'g1' },
          ],
        }),
      code: 'KH_ERR_EXPANSION_EXISTS',
    },
    {
      what: 'group with an unknown capability',
      attempt: (i) => i.createGroup(INFO, { name: 'g9', capabilities: ['ROOT' as never] }),
      code: 'KH_ERR_INVALID_INPUT',
    },
    { what: 'info of unknown group', attempt: (i) => i.groupInfo('nope'), code: 'KH_ERR_GROUP_NOT_FOUND' },
    { what: 'update of unknown group', attempt: (i) => i.updateGroup(INFO, 'nope', { displayName: 'x' }), code: 'KH_ERR_GROUP_NOT_FOUND' },
    {
      what: 'update to an unknown manager',
      attempt: (i) => i.updateGroup(INFO, 'g1', { managedBy: 'nope' }),
      code: 'KH_ERR_GROUP_NOT_FOUND',
    },
    {
      what: 'group created to manage itself',
      attempt: (i) => i.createGroup(INFO, { name: 'g9', managedBy: 'g9' }),
      code: 'KH_ERR_MANAGED_BY_CYCLE',
      message: /g9 → g9/,
    },
    {
      what: 'group made to manage itself',
      attempt: (i) => i.updateGroup(INFO, 'g1', { managedBy: 'g1' }),
      code: 'KH_ERR_MANAGED_BY_CYCLE',
      message: /g1 → g1/,
    },
    {
      what: 'managedBy chain coming back to the group',
      attempt: (i) => i.updateGroup(INFO, 'g1', { managedBy: 'g3' }),
      code: 'KH_ERR_MANAGED_BY_CYCLE',
      message: /g1 → g3 → g1/,
    },
    {
      what: 'update of a field that is not a patch field',
      attempt: (i) => i.updateGroup(INFO, 'g1', { number: 5 } as never),
      code: 'KH_ERR_INVALID_INPUT',
    },
    {
      what: 'untyped meta of unknown group',
      attempt: (i) => i.groupUntypedMeta(INFO, 'nope', { action: 'upsert', key: 'k', value: 'v' }),
      code: 'KH_ERR_GROUP_NOT_FOUND',
    },
    {
      what: 'kv of unknown group',
      attempt: (i) => i.groupKv(INFO, 'nope', { action: 'add', key: 'k', values: [] }),
      code: 'KH_ERR_GROUP_NOT_FOUND',
    },
    {
      what: 'group kv add of an existing key',
      attempt: (i) => i.groupKv(INFO, 'g1', { action: 'add', key: 'room', values: [] }),
      code: 'KH_ERR_KV_KEY_EXISTS',
    },
    { what: 'group kv get of a missing key', attempt: (i) => i.groupKvGet('g1', 'fax'), code: 'KH_ERR_KV_KEY_NOT_FOUND' },
    {
      what: 'capabilities of unknown group',
      attempt: (i) => i.groupCapabilities(INFO, 'nope', { action: 'add', value: 'LOCK_ENTITY' }),
      code: 'KH_ERR_GROUP_NOT_FOUND',
    },
    {
      what: 'expansion of unknown group',
      attempt: (i) => i.groupExpansions(INFO, 'nope', { action: 'add', value: { mode: 'INCLUDE', group: 'g1' } }),
      code: 'KH_ERR_GROUP_NOT_FOUND',
    },
    {
      what: 'expansion to an unknown group',
      attempt: (i) => i.groupExpansions(INFO, 'g1', { action: 'add', value: { mode: 'INCLUDE', group: 'nope' } }),
      code: 'KH_ERR_GROUP_NOT_FOUND',
    },
    {
      what: 'expansion to itself',
      attempt: (i) => i.groupExpansions(INFO, 'g1', { action: 'add', value: { mode: 'EXCLUDE', group: 'g1' } }),
      code: 'KH_ERR_EXPANSION_CYCLE',
    },
    {
      what: 'expansion closing a cycle of three (INCLUDE)',
      attempt: (i) => i.groupExpansions(INFO, 'g1', { action: 'add', value: { mode: 'INCLUDE', group: 'top' } }),
      code: 'KH_ERR_EXPANSION_CYCLE',
      message: /g1 → top → g2 → g1/,
    },
    {
      what: 'expansion closing a cycle through EXCLUDE',
      attempt: (i) => i.groupExpansions(INFO, 'g1', { action: 'add', value: { mode: 'EXCLUDE', group: 'g2' } }),
      code: 'KH_ERR_EXPANSION_CYCLE',
    },
    {
      what: 'duplicate expansion',
      attempt: (i) => i.groupExpansions(INFO, 'g2', { action: 'add', value: { mode: 'INCLUDE', group: 'g1' } }),
      code: 'KH_ERR_EXPANSION_EXISTS',
    },
    {
      what: 'same target in the other mode',
      attempt: (i) => i.groupExpansions(INFO, 'g2', { action: 'add', value: { mode: 'EXCLUDE', group: 'g1' } }),
      code: 'KH_ERR_EXPANSION_EXISTS',
    },
    {
      what: 'removing an absent expansion',
      attempt: (i) => i.groupExpansions(INFO, 'g2', { action: 'remove', value: { mode: 'EXCLUDE', group: 'g1' } }),
      code: 'KH_ERR_EXPANSION_NOT_FOUND',
    },
    {
      what: 'unknown expansion mode',
      attempt: (i) => i.groupExpansions(INFO, 'g2', { action: 'add', value: { mode: 'MERGE' as never, group: 'g3' } }),
      code: 'KH_ERR_INVALID_INPUT',
    },
    { what: 'adding an unknown entity', attempt: (i) => i.addMember(INFO, 'g1', 'ghost'), code: 'KH_ERR_ENTITY_NOT_FOUND' },
    { what: 'adding to an unknown group', attempt: (i) => i.addMember(INFO, 'nope', 'bob'), code: 'KH_ERR_GROUP_NOT_FOUND' },
    { what: 'adding a direct member again', attempt: (i) => i.addMember(INFO, 'g1', 'alice'), code: 'KH_ERR_ALREADY_MEMBER' },
    {
      what: 'removing a non-member',
      attempt: (i) => i.removeMember(INFO, 'g1', 'bob'),
      code: 'KH_ERR_NOT_A_MEMBER',
      message: /"bob" is not a direct member of "g1"/,
    },
    { what: 'removing an indirect member', attempt: (i) => i.removeMember(INFO, 'g2', 'alice'), code: 'KH_ERR_NOT_A_MEMBER' },
    { what: 'removing from an unknown group', attempt: (i) => i.removeMember(INFO, 'nope', 'alice'), code: 'KH_ERR_GROUP_NOT_FOUND' },
    { what: 'members of unknown group', attempt: (i) => i.groupMembers('nope'), code: 'KH_ERR_GROUP_NOT_FOUND' },
    { what: 'destroying an unknown group', attempt: (i) => i.destroyGroup(INFO, 'nope'), code: 'KH_ERR_GROUP_NOT_FOUND' },
    {
      what: 'destroying a group others expand',
      attempt: (i) => i.destroyGroup(INFO, 'g2'),
      code: 'KH_ERR_GROUP_IN_USE',
      message: /by top$/,
    },
    {
      what: 'destroying a group that is expanded and manages others',
      attempt: (i) => i.destroyGroup(INFO, 'g1'),
      code: 'KH_ERR_GROUP_IN_USE',
      message: /by g2, g3$/,
    },
  ];

  describe('identity: bad input is refused with a stable code and changes nothing', () => {
    let h: Harness;
    before(async () => {
      h = openHarness(undefined, await openStore());
      await h.identity.createEntity(INFO, { id: 'alice', number: 1, secret: 'right' });
      await h.identity.createEntity(INFO, { id: 'bob' });
      await h.identity.entityKv(INFO, 'alice', { action: 'add', key: 'phone', values: ['1'] });
      await h.identity.createGroup(INFO, { name: 'g1', number: 10 });
      await h.identity.groupKv(INFO, 'g1', { action: 'add', key: 'room', values: ['1'] });
      await h.identity.createGroup(INFO, { name: 'g2', expansions: [{ mode: 'INCLUDE', group: 'g1' }] });
      await h.identity.createGroup(INFO, { name: 'g3', managedBy: 'g1' });
      await h.identity.createGroup(INFO, { name: 'top', expansions: [{ mode: 'INCLUDE', group: 'g2' }] });
      await h.identity.addMember(INFO, 'g1', 'alice');
    });
    after(() => h.close());

    for (const c of CASES) {
      it(`${c.what}: ${c.code}`, async () => {
        await refusedWithoutChange(h.store, () => c.attempt(h.identity), c.code, c.message);
      });
    }

    it('accepts a name of exactly 128 characters and one with non-ASCII letters', async () => {
      await h.identity.createEntity(INFO, { id: 'x'.repeat(128) });
      await h.identity.createGroup(INFO, { name: 'équipe-ß' });
      assert.equal((await h.identity.entityInfo('x'.repeat(128))).id.length, 128);
    });
  });
});
