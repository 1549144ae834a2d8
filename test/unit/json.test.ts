// copyJson and jsonEqual (sdk/src/json.ts), on which "did the hook change the object" rests.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { copyJson, jsonEqual } from 'keyhold-plugin-sdk';

const value = { id: 'alice', n: 1, ok: true, none: null, list: ['a', { b: [1, 2] }], map: { k: { values: ['v'] } } };

describe('copyJson', () => {
  it('copies every level: changing the copy leaves the original as it was', () => {
    const copy = copyJson(value);
    assert.deepEqual(copy, value);
    (copy.list[1] as { b: number[] }).b.push(3);
    copy.map.k.values[0] = 'changed';
    assert.deepEqual(value.list[1], { b: [1, 2] });
    assert.deepEqual(value.map.k.values, ['v']);
  });
});

describe('jsonEqual', () => {
  it('is true for equal values in any key order', () => {
    assert.ok(jsonEqual(value, copyJson(value)));
    assert.ok(jsonEqual({ a: 1, b: 2 }, { b: 2, a: 1 }));
  });
  const different: [string, unknown, unknown][] = [
    ['a changed string deep down', value, { ...value, map: { k: { values: ['w'] } } }],
    ['an extra key', { a: 1 }, { a: 1, b: 1 }],
    ['a missing key with the same count', { a: 1, b: undefined }, { a: 1, c: undefined }],
    ['a longer array', [1], [1, 1]],
    ['an array and an object', [], {}],
    ['null and an object', null, {}],
    ['1 and "1"', 1, '1'],
  ];
  for (const [what, a, b] of different) {
    it(`is false for ${what}`, () => {
      assert.equal(jsonEqual(a, b), false);
      assert.equal(jsonEqual(b, a), false);
    });
  }
});
