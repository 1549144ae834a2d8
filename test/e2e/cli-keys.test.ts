// keyhold keys list / rotate on a server upgraded from a version that kept its signing key in
// token-signing-key.pem: the first start imports the file, so a token issued before the upgrade
// (no kid) stays valid, also after a rotation; new tokens carry the new key's kid.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { decodeProtectedHeader, importPKCS8, SignJWT } from 'jose';
import { pino } from 'pino';
import { LEGACY_KEY_FILE } from '../../src/api/key-ring.js';
import { DATABASE_FILE, startServer } from '../../src/server.js';
import { call, capturingLogger, expectCode, killChildren, login, runCli, scratchDir, serverEnv, tokenClaims } from '../support/keyhold.js';

after(killChildren);

describe('keyhold keys', () => {
  it('imports the key file of an older install, lists and rotates keys; tokens from before the upgrade and the rotation stay valid', async () => {
    const dataDir = scratchDir('keys-upgrade');
    const env = serverEnv(dataDir, { KEYHOLD_BOOTSTRAP: 'root:root-secret' });
    // An older install: its key in the data directory, its database without keys, a token it issued (no kid).
    let handle = await startServer({ env, logger: pino({ level: 'silent' }) });
    const claims = tokenClaims(await login(handle.url, 'root', 'root-secret'));
    await handle.close();
    const db = new Database(join(dataDir, DATABASE_FILE));
    const pem = db.prepare<[], string>('SELECT private_key FROM signing_keys').pluck().get()!;
    db.exec('DELETE FROM signing_keys');
    db.close();
    writeFileSync(join(dataDir, LEGACY_KEY_FILE), pem, { mode: 0o600 });
    const { aud: _aud, ...body } = claims as unknown as Record<string, unknown>;
    const beforeUpgrade = await new SignJWT(body)
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
      .setAudience('keyhold')
      .sign(await importPKCS8(pem, 'EdDSA'));

    const { logger, records } = capturingLogger('info');
    handle = await startServer({ env, logger });
    try {
      assert.ok(
        records.some((r) => String(r.msg).includes('can be removed')),
        'the log says the key file can be removed',
      );
      assert.equal(
        (await call(handle.url, 'GET', '/v1/auth/whoami', { token: beforeUpgrade })).status,
        200,
        'a token from before the upgrade',
      );
      const cli = (args: string[]) => runCli([...args, '--json'], { KEYHOLD_SERVER: handle.url, KEYHOLD_TOKEN: beforeUpgrade });
      const listed = JSON.parse(expectCode(await cli(['keys', 'list']), 0, 'keys list').stdout).keys;
      assert.deepEqual(
        listed.map((k: { state: string; origin: string }) => [k.state, k.origin]),
        [['current', 'imported']],
      );
      assert.doesNotMatch(JSON.stringify(listed), /PRIVATE KEY/);
      const rotated = JSON.parse(expectCode(await cli(['keys', 'rotate']), 0, 'keys rotate').stdout).current;
      const after = JSON.parse(expectCode(await cli(['keys', 'list']), 0, 'keys list').stdout).keys;
      assert.deepEqual(
        after.map((k: { kid: string; state: string }) => [k.kid, k.state]),
        [
          [rotated.kid, 'current'],
          [listed[0].kid, 'retired'],
        ],
      );
      assert.equal(
        (await call(handle.url, 'GET', '/v1/auth/whoami', { token: beforeUpgrade })).status,
        200,
        'still valid after the rotation',
      );
      assert.equal(decodeProtectedHeader(await login(handle.url, 'root', 'root-secret')).kid, rotated.kid);
      const jwks = (await call(handle.url, 'GET', '/v1/auth/jwks')).body.keys.map((k: { kid: string }) => k.kid).sort();
      assert.deepEqual(jwks, [rotated.kid, listed[0].kid].sort());
      const refused = await runCli(['keys', 'rotate'], { KEYHOLD_SERVER: handle.url });
      assert.notEqual(refused.code, 0, 'rotate without a token');
    } finally {
      await handle.close();
    }
  });
});
