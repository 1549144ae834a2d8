import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CAPABILITIES,
  decodeEntity,
  encodeEntity,
  HOOK_NAMES,
  HOOKS,
  LIFECYCLE_POINTS,
  parseEntity,
  parseGroup,
  SchemaError,
} from 'keyhold-plugin-sdk';

describe('hook list', () => {
  it('has twelve points and 24 uniquely named hooks, pre before post', () => {
    assert.equal(LIFECYCLE_POINTS.length, 12);
    assert.equal(HOOKS.length, 24);
    assert.equal(new Set(HOOK_NAMES).size, 24);
    assert.deepEqual(HOOK_NAMES.slice(0, 2), ['preEntityCreate', 'postEntityCreate']);
    assert.equal(HOOK_NAMES.at(-1), 'postMembershipRemove');
  });
});

describe('schema', () => {
  it('fills defaults and keeps values', () => {
    const e = parseEntity({ id: 'alice', meta: { capabilities: ['CREATE_ENTITY'], kv: { phone: { values: ['1'] } } } });
    assert.equal(e.number, 0);
    assert.equal(e.meta.displayName, '');
    assert.deepEqual(e.meta.groups, []);
    assert.deepEqual(e.meta.capabilities, ['CREATE_ENTITY']);
    assert.deepEqual(e.meta.kv, { phone: { values: ['1'] } });
    assert.equal(CAPABILITIES.length, 12);
  });

  it('refuses unknown fields, wrong types and unknown enum names with the path', () => {
    assert.throws(
      () => parseEntity({ id: 'a', bogus: 1 }),
      (e: unknown) => e instanceof SchemaError && e.path === 'bogus',
    );
    assert.throws(() => parseEntity({ id: 7 }), /id: expected a string, got number 7/);
    assert.throws(() => parseEntity({ id: 'a', meta: { capabilities: ['ROOT'] } }), /meta\.capabilities\[0\]: .*not a Capability/);
    assert.throws(() => parseEntity({ id: 'a', number: 1.5 }), /number: expected a 32-bit integer/);
    assert.throws(() => parseGroup({ name: 'g', expansions: [{ group: 'h' }] }), /expansions\[0\]\.mode: is required/);
    assert.throws(() => parseGroup([]), /expected a Group object, got an array/);
    assert.throws(() => parseEntity({ id: 'a\ud800' }), /id: not valid Unicode text/);
    assert.throws(() => parseEntity({ id: 'a', meta: { kv: { '\udc00': { values: [] } } } }), /meta\.kv: a key is not valid Unicode/);
    // As a plugin's result arrives: JSON.parse makes "__proto__" an own key, which a plain assignment would turn into the prototype.
    assert.throws(
      () => parseEntity(JSON.parse('{"id":"a","meta":{"kv":{"__proto__":{"values":["x"]}}}}')),
      /meta\.kv: the key "__proto__" is reserved/,
    );
  });

  it('round-trips through the protobuf encoding', () => {
    const e = parseEntity({ id: 'bob', number: 5, meta: { untypedMeta: ['a:b'], locked: true, capabilities: ['GLOBAL_ROOT'] } });
    assert.deepEqual(decodeEntity(encodeEntity(e)), e);
  });
});
