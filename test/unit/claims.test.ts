// The claim rules of verify plugins (sdk/src/claims.ts): the forms parsed, a bad rule refused with
// the forms listed, and each form matched against an entity as the host matches it at a login.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { claims, needsGroups, parseClaimRule } from 'keyhold-plugin-sdk';
import { fakeEntity } from 'keyhold-plugin-sdk/testing';

const alice = fakeEntity({ id: 'alice', meta: { untypedMeta: ['dept:ops', 'verify.totp:on'], kv: { auth: { values: ['ldap', 'x'] } } } });
const matches = (rule: string, groups: string[] = [], plugin = 'totp') => claims([parseClaimRule(rule)], plugin, alice, groups);

describe('claim rules', () => {
  it('parses every form and refuses anything else, listing the forms', () => {
    assert.deepEqual(parseClaimRule('*'), { kind: 'all' });
    assert.deepEqual(parseClaimRule('marker'), { kind: 'marker' });
    assert.deepEqual(parseClaimRule('group:staff'), { kind: 'group', group: 'staff' });
    assert.deepEqual(parseClaimRule('kv:auth=ldap=x'), { kind: 'kv', key: 'auth', value: 'ldap=x' });
    assert.deepEqual(parseClaimRule('meta:dept=ops'), { kind: 'meta', key: 'dept', value: 'ops' });
    for (const bad of ['', 'group:', 'kv:auth', 'kv:=x', 'meta:dept=', 'user:alice', 'all'])
      assert.throws(
        () => parseClaimRule(bad),
        /is not one keyhold knows; use "\*", "group:NAME", "kv:KEY=VALUE", "meta:KEY=VALUE" or "marker"/,
        bad,
      );
  });

  it('matches the entity as stored', () => {
    assert.equal(matches('*'), true);
    assert.equal(matches('group:staff', ['staff']), true);
    assert.equal(matches('group:staff', ['other']), false);
    assert.equal(matches('kv:auth=ldap'), true);
    assert.equal(matches('kv:auth=pam'), false);
    assert.equal(matches('meta:dept=ops'), true);
    assert.equal(matches('meta:dept=dev'), false);
    assert.equal(matches('marker'), true, 'verify.totp:… marks alice for totp');
    assert.equal(matches('marker', [], 'ldap'), false, 'but not for another plugin');
    assert.equal(needsGroups([parseClaimRule('marker'), parseClaimRule('group:a')]), true);
    assert.equal(needsGroups([parseClaimRule('*')]), false);
  });
});
