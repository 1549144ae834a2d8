// The totp plugin: RFC 6238's test vectors, enrolment, codes, replay and staleness, recovery codes
// (in-process, on the SDK's harness and its clock); then codes made by Debian's oathtool logging in
// through the real API and the real CLI, with the plugin as a real child of a real server.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { pino } from 'pino';
import YAML from 'yaml';
import { Veto } from 'keyhold-plugin-sdk';
import { fakeEntity, PluginHarness } from 'keyhold-plugin-sdk/testing';
import { base32Decode, base32Encode, Totp, totpCode } from '../../plugins/src/totp.js';
import { startServer } from '../../src/server.js';
import { call, expectCode, killChildren, login, runCli, scratchDir, serverEnv } from '../support/keyhold.js';
import { repoPath } from '../support/plugin-projects.js';

after(killChildren);

// RFC 6238 Appendix B: the seeds are the ASCII digits repeated to the key length of each hash.
const SEED_SHA1 = Buffer.from('12345678901234567890');
const SEED_SHA256 = Buffer.from('12345678901234567890123456789012');
const SEED_SHA512 = Buffer.from('1234567890123456789012345678901234567890123456789012345678901234');
const VECTORS: [number, string, string, string][] = [
  [59, '94287082', '46119246', '90693936'],
  [1111111109, '07081804', '68084774', '25091201'],
  [1111111111, '14050471', '67062674', '99943326'],
  [1234567890, '89005924', '91819424', '93441116'],
  [2000000000, '69279037', '90698825', '38618901'],
  [20000000000, '65353130', '77737706', '47863826'],
];

describe('totp: RFC 6238', () => {
  it('gives the Appendix B codes (8 digits, 30 s steps) for SHA-1, SHA-256 and SHA-512', () => {
    for (const [time, sha1, sha256, sha512] of VECTORS) {
      const step = Math.floor(time / 30);
      assert.equal(totpCode(SEED_SHA1, step, 8), sha1, `SHA-1 at ${time}`);
      assert.equal(totpCode(SEED_SHA256, step, 8, 'SHA256'), sha256, `SHA-256 at ${time}`);
      assert.equal(totpCode(SEED_SHA512, step, 8, 'SHA512'), sha512, `SHA-512 at ${time}`);
    }
  });

  it('encodes and decodes base32 as RFC 4648 does', () => {
    assert.equal(base32Encode(SEED_SHA1), 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
    assert.equal(base32Encode(Buffer.from('fooba')), 'MZXW6YTB');
    assert.equal(base32Encode(Buffer.from('foob')), 'MZXW6YQ');
    assert.deepEqual(base32Decode('mzxw6yq='), Buffer.from('foob'));
  });
});

const alice = fakeEntity({ id: 'alice' });

async function enrolled(config = {}) {
  const h = await PluginHarness.start(new Totp(), { config });
  const enrolment = await h.action('enrol', { entity: 'alice' });
  const key = base32Decode(enrolment.secret as string);
  const codeAt = (offsetSteps = 0) => totpCode(key, Math.floor(h.clock.now() / 30_000) + offsetSteps, 6);
  return { h, enrolment, codeAt };
}

describe('totp: verify', () => {
  it('declares verify in also mode only, for the marked entities by default', async () => {
    const h = await PluginHarness.start(new Totp());
    assert.deepEqual(h.plugin.verifyModes, ['also']);
    assert.deepEqual(h.plugin.verifyClaims, ['marker']);
    await assert.rejects(
      PluginHarness.start(new Totp(), { config: { claims: ['group'] } }),
      /config "claims": claim rule "group" is not one keyhold knows/,
    );
  });

  it('enrolment shows the otpauth:// URI and the secret once, and refuses to enrol again without force', async () => {
    const { h, enrolment } = await enrolled();
    assert.match(enrolment.secret as string, /^[A-Z2-7]{32}$/);
    assert.equal(
      enrolment.uri,
      `otpauth://totp/keyhold%3Aalice?secret=${enrolment.secret}&issuer=keyhold&algorithm=SHA1&digits=6&period=30`,
    );
    assert.equal((enrolment.recoveryCodes as string[]).length, 10);
    await assert.rejects(h.action('enrol', { entity: 'alice' }), (e: unknown) => e instanceof Veto && /already enrolled/.test(e.message));
    assert.notEqual((await h.action('enrol', { entity: 'alice', force: true })).secret, enrolment.secret);
  });

  it('accepts the password followed by the current code and leaves the password for the built-in check', async () => {
    const { h, codeAt } = await enrolled();
    assert.deepEqual(await h.verify(alice, `pass word 123${codeAt()}`), { ok: true, secret: 'pass word 123' });
  });

  it('refuses a used code, an earlier one, a stale one and no code; accepts the next step', async () => {
    const { h, codeAt } = await enrolled();
    const code = codeAt();
    assert.equal((await h.verify(alice, `pw${code}`)).ok, true);
    assert.deepEqual(await h.verify(alice, `pw${code}`), { ok: false, reason: 'code already used' });
    assert.deepEqual(await h.verify(alice, `pw${codeAt(-1)}`), { ok: false, reason: 'code already used' });
    assert.deepEqual(await h.verify(alice, `pw${codeAt(-10)}`), { ok: false, reason: 'wrong or stale code' });
    assert.equal((await h.verify(alice, 'pw')).ok, false);
    h.clock.advance('30s');
    assert.equal((await h.verify(alice, `pw${codeAt()}`)).ok, true);
  });

  it('accepts the steps of the configured window around now, no further', async () => {
    const { h, codeAt } = await enrolled({ window: 2 });
    assert.equal((await h.verify(alice, `pw${codeAt(-3)}`)).ok, false);
    assert.equal((await h.verify(alice, `pw${codeAt(-2)}`)).ok, true);
    assert.equal((await h.verify(alice, `pw${codeAt(2)}`)).ok, true);
  });

  it('takes each recovery code once', async () => {
    const { h, enrolment } = await enrolled();
    const [first] = enrolment.recoveryCodes as string[];
    assert.deepEqual(await h.verify(alice, `pw${first}`), { ok: true, secret: 'pw' });
    assert.deepEqual(await h.verify(alice, `pw${first}`), { ok: false, reason: 'wrong recovery code' });
  });

  it('refuses an entity that is not enrolled, and forgets one that is removed', async () => {
    const { h, codeAt } = await enrolled();
    assert.deepEqual(await h.verify(fakeEntity({ id: 'bob' }), 'pw123456'), { ok: false, reason: 'not enrolled for TOTP' });
    await h.action('remove', { entity: 'alice' });
    assert.deepEqual(await h.verify(alice, `pw${codeAt()}`), { ok: false, reason: 'not enrolled for TOTP' });
  });
});

const OATHTOOL = spawnSync('oathtool', ['--version']).status === 0;
if (!OATHTOOL)
  console.error(
    '\n*** SKIPPING the oathtool tests of the totp plugin: oathtool is not installed (Debian: apt-get install -y oathtool; .ci/run installs it) ***\n',
  );

/** The current code for `secret`, or the one of `at` (epoch ms), as Debian's oathtool makes it. */
function oathtool(secret: string, at?: number): string {
  const now =
    at === undefined
      ? []
      : [
          `--now=${new Date(at)
            .toISOString()
            .replace('T', ' ')
            .replace(/\.\d+Z$/, ' UTC')}`,
        ];
  return execFileSync('oathtool', ['--totp', '-b', ...now, secret], { encoding: 'utf8' }).trim();
}

/** A server with the totp plugin loaded; `dir` again after close is the same server restarted on the same data. */
async function totpServer(t: TestContext, dir = scratchDir('totp')) {
  const plugins = mkdtempSync(join(tmpdir(), 'keyhold-plugins-'));
  t.after(() => rmSync(plugins, { recursive: true, force: true }));
  symlinkSync(repoPath('dist/plugins/src/totp.js'), join(plugins, 'totp'));
  const configFile = join(dir, 'keyhold.yaml');
  writeFileSync(configFile, YAML.stringify({ plugins: { pingInterval: 0 } }));
  const handle = await startServer({
    env: serverEnv(join(dir, 'data'), {
      KEYHOLD_PLUGIN_DIR: plugins,
      KEYHOLD_CONFIG: configFile,
      KEYHOLD_BOOTSTRAP: 'root:root-secret-T1',
    }),
    logger: pino({ level: 'silent' }),
  });
  t.after(() => handle.close());
  const token = await login(handle.url, 'root', 'root-secret-T1');
  return { url: handle.url, token, dir, close: () => handle.close() };
}

const loginStatus = async (url: string, id: string, secret: string) =>
  (await call(url, 'POST', '/v1/auth/token', { body: { id, secret } })).status;

describe('totp: codes from oathtool through a real server', { skip: !OATHTOOL && 'oathtool is not installed' }, () => {
  it('logs in through the API with the password and the code; refuses the code again, a stale code and the password alone', async (t) => {
    const { url, token } = await totpServer(t);
    assert.equal((await call(url, 'POST', '/v1/entities', { token, body: { id: 'alice', secret: 'alice-pass-1' } })).status, 201);
    const enrol = await call(url, 'POST', '/v1/plugins/totp/actions/enrol', { token, body: { entity: 'alice' } });
    assert.equal(enrol.status, 200, enrol.text);
    // Only GLOBAL_ROOT may run a plugin's actions.
    const asAlice = await login(url, 'alice', 'alice-pass-1');
    assert.equal(
      (await call(url, 'POST', '/v1/plugins/totp/actions/enrol', { token: asAlice, body: { entity: 'alice', force: true } })).status,
      403,
    );
    // An action the plugin refuses answers with its message; one it does not have, or a plugin not loaded, is a 404.
    const again = await call(url, 'POST', '/v1/plugins/totp/actions/enrol', { token, body: { entity: 'alice' } });
    assert.deepEqual([again.status, again.body.code], [422, 'KH_ERR_PLUGIN_VETO']);
    assert.match(again.body.message, /^plugin "totp" refused action enrol: "alice" is already enrolled/);
    const unknown = await call(url, 'POST', '/v1/plugins/totp/actions/show', { token, body: { entity: 'alice' } });
    assert.deepEqual(
      [unknown.status, unknown.body.code, unknown.body.message],
      [404, 'KH_ERR_ACTION_NOT_FOUND', 'plugin "totp" has no action "show"; it offers: enrol, remove'],
    );
    assert.equal((await call(url, 'POST', '/v1/plugins/hotp/actions/enrol', { token, body: {} })).body.code, 'KH_ERR_ACTION_NOT_FOUND');
    const marked = await call(url, 'POST', '/v1/entities/alice/untyped-meta', {
      token,
      body: { action: 'upsert', key: 'verify.totp', value: 'on' },
    });
    assert.equal(marked.status, 200, marked.text);

    assert.equal(await loginStatus(url, 'alice', 'alice-pass-1'), 401, 'the password alone is refused once she is marked');
    const code = oathtool(enrol.body.secret);
    assert.equal(await loginStatus(url, 'alice', `alice-pass-1${code}`), 200, 'the password followed by the code logs in');
    assert.equal(await loginStatus(url, 'alice', `alice-pass-1${code}`), 401, 'a replayed code is refused');
    assert.equal(
      await loginStatus(url, 'alice', `alice-pass-1${oathtool(enrol.body.secret, Date.now() - 5 * 60_000)}`),
      401,
      'a stale code is refused',
    );
    // Both factors must be right (also mode): a good one-time code does not make up for a wrong password.
    assert.equal(
      await loginStatus(url, 'alice', `wrong-pass${enrol.body.recoveryCodes[1]}`),
      401,
      'a wrong password with a good recovery code',
    );
    assert.equal(await loginStatus(url, 'alice', `alice-pass-1${enrol.body.recoveryCodes[0]}`), 200, 'a recovery code logs in');
    assert.equal(await loginStatus(url, 'alice', `alice-pass-1${enrol.body.recoveryCodes[0]}`), 401, 'once');
  });

  it('enrols and logs in through the CLI (keyhold entity totp enrol, keyhold auth login)', async (t) => {
    const { url, token } = await totpServer(t);
    assert.equal((await call(url, 'POST', '/v1/entities', { token, body: { id: 'bob', secret: 'bob-pass-2' } })).status, 201);
    const rootHome = scratchDir('cli-root');
    const bobHome = scratchDir('cli-bob');
    const asRoot = (args: string[], stdin = '') => runCli(args, { KEYHOLD_SERVER: url, XDG_CONFIG_HOME: rootHome }, stdin);
    const asBob = (args: string[], stdin = '') => runCli(args, { KEYHOLD_SERVER: url, XDG_CONFIG_HOME: bobHome }, stdin);
    expectCode(await asRoot(['auth', 'login', 'root', '--secret-stdin'], 'root-secret-T1\n'), 0, 'root login');
    const enrol = expectCode(await asRoot(['entity', 'totp', 'enrol', 'bob']), 0, 'enrol');
    assert.match(enrol.stdout, /otpauth:\/\/totp\/keyhold%3Abob\?secret=/);
    const secret = /secret \(base32\): ([A-Z2-7]+)/.exec(enrol.stdout)![1]!;
    expectCode(await asBob(['auth', 'login', 'bob', '--secret-stdin'], 'bob-pass-2\n'), 1, 'the password alone');
    expectCode(await asBob(['auth', 'login', 'bob', '--secret-stdin'], `bob-pass-2${oathtool(secret)}\n`), 0, 'password and code');
    expectCode(await asRoot(['entity', 'totp', 'remove', 'bob']), 0, 'remove');
    expectCode(await asBob(['auth', 'login', 'bob', '--secret-stdin'], 'bob-pass-2\n'), 0, 'the password alone once removed');
  });

  it('keeps the enrolment and the last code used over a server restart (host-provided plugin state)', async (t) => {
    const first = await totpServer(t);
    assert.equal(
      (await call(first.url, 'POST', '/v1/entities', { token: first.token, body: { id: 'carol', secret: 'carol-pass-3' } })).status,
      201,
    );
    const enrol = await call(first.url, 'POST', '/v1/plugins/totp/actions/enrol', { token: first.token, body: { entity: 'carol' } });
    assert.equal(enrol.status, 200, enrol.text);
    const mark = { action: 'upsert', key: 'verify.totp', value: 'on' };
    assert.equal((await call(first.url, 'POST', '/v1/entities/carol/untyped-meta', { token: first.token, body: mark })).status, 200);
    const code = oathtool(enrol.body.secret);
    assert.equal(await loginStatus(first.url, 'carol', `carol-pass-3${code}`), 200);
    await first.close();

    const second = await totpServer(t, first.dir);
    assert.equal(await loginStatus(second.url, 'carol', `carol-pass-3${code}`), 401, 'the code used before the restart is still used');
    assert.equal(await loginStatus(second.url, 'carol', 'carol-pass-3'), 401, 'still enrolled: the password alone is refused');
    assert.equal(
      await loginStatus(second.url, 'carol', `carol-pass-3${enrol.body.recoveryCodes[0]}`),
      200,
      'the enrolment (its recovery codes) survived the restart',
    );
    const keys = await call(second.url, 'GET', '/v1/plugins/totp/state', { token: second.token });
    assert.equal(keys.status, 200, keys.text);
    assert.ok(JSON.stringify(keys.body).includes('secret/carol'), keys.text);
  });
});

describe('totp: what the server shows of it', () => {
  it('/v1/plugins and keyhold plugin list show that it verifies secrets (its claims, in also mode) and its admin actions', async (t) => {
    const { url, token } = await totpServer(t);
    const [listed] = (await call(url, 'GET', '/v1/plugins', { token })).body.plugins;
    assert.deepEqual([listed.name, listed.verify, listed.actions], ['totp', { claims: ['marker'], mode: 'also' }, ['enrol', 'remove']]);
    const cli = (args: string[]) => runCli(args, { KEYHOLD_SERVER: url, KEYHOLD_TOKEN: token });
    const json = expectCode(await cli(['--json', 'plugin', 'list']), 0, 'plugin list --json');
    assert.deepEqual(JSON.parse(json.stdout), [listed]);
    const table = expectCode(await cli(['plugin', 'list']), 0, 'plugin list');
    assert.match(table.stdout, /^PLUGIN .* VERIFIES +ACTIONS +LAST ERROR$/m);
    assert.match(table.stdout, /^totp +ready .* also: marker +enrol,remove *$/m);
  });
});
