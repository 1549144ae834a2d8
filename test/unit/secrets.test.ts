import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_HASH_PARAMS, hashSecret, needsRehash, resolveHashParams, verifySecret } from '../../src/identity/secrets.js';
import { FAST_HASH } from '../support/identity-harness.js';

describe('secrets', () => {
  it('hashes with argon2id at the OWASP setting by default, parameters kept in the encoding', async () => {
    const hash = await hashSecret('correct horse');
    assert.match(hash, /^\$argon2id\$v=19\$m=19456,p=1,t=2\$/);
    assert.equal(await verifySecret(hash, 'correct horse'), true);
    assert.equal(await verifySecret(hash, 'correct horsE'), false);
    assert.equal(needsRehash(hash), false);
  });

  it('salts every hash and honours configured parameters', async () => {
    const [a, b] = await Promise.all([hashSecret('same', FAST_HASH), hashSecret('same', FAST_HASH)]);
    assert.notEqual(a, b);
    assert.match(a, /\$m=1024,p=1,t=1\$/);
    assert.equal(await verifySecret(b, 'same'), true);
  });

  it('tells which hashes were made with other parameters', async () => {
    const weak = await hashSecret('s', FAST_HASH);
    assert.equal(needsRehash(weak, DEFAULT_HASH_PARAMS), true);
    assert.equal(needsRehash(weak, FAST_HASH), false);
    assert.deepEqual(resolveHashParams({ timeCost: 3 }), { memoryCost: 19456, timeCost: 3, parallelism: 1 });
  });
});
