// End to end: the real `keyhold` binary (child processes) against a real server process,
// through the whole life of an entity, then a restart on the same data directory.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { credentialsPath } from '../../src/cli/credentials.js';
import { fixture } from '../fixtures/plugin-host.js';
import {
  call,
  expectCode,
  killChildren,
  login,
  runCli,
  scratchDir,
  serverEnv,
  startServerProcess,
  startTestServer,
} from '../support/keyhold.js';

after(killChildren);

describe('keyhold CLI against a server process', () => {
  it('bootstraps, manages entities and groups, enforces capabilities and keeps everything across a restart', async () => {
    const dataDir = scratchDir('e2e-data');
    const env = serverEnv(dataDir);
    let server = await startServerProcess({ ...env, KEYHOLD_BOOTSTRAP: 'root:root-secret-1' });
    assert.doesNotMatch(server.stdout(), /shown only this once/, 'a bootstrap from KEYHOLD_BOOTSTRAP prints no secret');

    const rootHome = scratchDir('e2e-root');
    const asRoot = (args: string[], stdin = '') => runCli(args, { KEYHOLD_SERVER: server.url, XDG_CONFIG_HOME: rootHome }, stdin);
    const aliceHome = scratchDir('e2e-alice');
    const asAlice = (args: string[], stdin = '') => runCli(args, { KEYHOLD_SERVER: server.url, XDG_CONFIG_HOME: aliceHome }, stdin);

    expectCode(await asRoot(['auth', 'login', 'root', '--secret-stdin'], 'wrong\n'), 1, 'login with a wrong secret');
    const loggedIn = expectCode(await asRoot(['auth', 'login', 'root', '--secret-stdin'], 'root-secret-1\n'), 0, 'root login');
    assert.match(loggedIn.stdout, /logged in .* as root/);
    assert.equal(
      statSync(credentialsPath({ XDG_CONFIG_HOME: rootHome })).mode & 0o777,
      0o600,
      'the saved token is readable by its owner only',
    );

    expectCode(await asRoot(['entity', 'create', 'alice', '--display-name', 'Alice Example']), 0, 'create alice');
    expectCode(await asRoot(['entity', 'set-secret', 'alice', '--secret-stdin'], 'alice-secret\n'), 0, 'set secret');

    expectCode(await asRoot(['auth', 'check', 'alice', '--secret-stdin'], 'alice-secret\n'), 0, 'check with the right secret');
    const wrong = expectCode(await asRoot(['auth', 'check', 'alice', '--secret-stdin'], 'nope\n'), 1, 'check with a wrong secret');
    assert.match(wrong.stderr, /KH_ERR_AUTH_FAILED/);

    expectCode(await asRoot(['entity', 'lock', 'alice']), 0, 'lock');
    const locked = expectCode(await asRoot(['auth', 'check', 'alice', '--secret-stdin'], 'alice-secret\n'), 1, 'check while locked');
    // Told like a wrong secret (a lock must not tell that the id exists); the server log has the reason.
    assert.equal(locked.stderr, wrong.stderr);
    assert.match(server.stdout(), /"entity":"alice","address":"127\.0\.0\.1","reason":"locked"/);
    expectCode(await asRoot(['entity', 'unlock', 'alice']), 0, 'unlock');
    expectCode(await asRoot(['auth', 'check', 'alice', '--secret-stdin'], 'alice-secret\n'), 0, 'check after unlock');

    // Before joining a group, alice may not create entities.
    expectCode(await asAlice(['auth', 'login', 'alice', '--secret-stdin'], 'alice-secret\n'), 0, 'alice login');
    const refused = expectCode(await asAlice(['entity', 'create', 'bob']), 1, 'alice creates without the capability');
    assert.match(refused.stderr, /KH_ERR_FORBIDDEN/);

    expectCode(await asRoot(['group', 'create', 'creators', '--display-name', 'Entity creators']), 0, 'create group');
    expectCode(await asRoot(['group', 'caps', 'creators', 'add', 'CREATE_ENTITY']), 0, 'group capability');
    expectCode(await asRoot(['group', 'add-member', 'creators', 'alice']), 0, 'add member');
    const members = expectCode(await asRoot(['--json', 'group', 'members', 'creators']), 0, 'members');
    assert.deepEqual(JSON.parse(members.stdout), ['alice']);

    // Capabilities are in the token: alice logs in again to get the group's.
    expectCode(await asAlice(['auth', 'login', 'alice', '--secret-stdin'], 'alice-secret\n'), 0, 'alice login again');
    const caps = expectCode(await asAlice(['entity', 'caps', 'alice', '--json']), 0, 'effective caps');
    assert.deepEqual(JSON.parse(caps.stdout).effective, ['CREATE_ENTITY']);
    expectCode(await asAlice(['entity', 'create', 'bob']), 0, 'alice creates bob through the group capability');
    expectCode(await asAlice(['group', 'create', 'nope']), 1, 'alice still may not create groups');
    expectCode(await asRoot(['entity', 'create', 'carol']), 0, 'create carol');

    // Metadata, key/value, keys and expansions through the CLI.
    expectCode(await asRoot(['entity', 'update', 'alice', '--shell', '/bin/zsh']), 0, 'update');
    expectCode(await asRoot(['entity', 'meta', 'alice', 'upsert', 'dept', 'research']), 0, 'meta upsert');
    assert.deepEqual(JSON.parse(expectCode(await asRoot(['--json', 'entity', 'meta', 'alice', 'read', 'dept']), 0, 'meta read').stdout), [
      'research',
    ]);
    expectCode(await asRoot(['entity', 'kv', 'alice', 'add', 'phone', '+1 555', '+1 556']), 0, 'kv add');
    assert.deepEqual(JSON.parse(expectCode(await asRoot(['--json', 'entity', 'kv', 'alice', 'get', 'phone']), 0, 'kv get').stdout).values, [
      '+1 555',
      '+1 556',
    ]);
    expectCode(await asAlice(['entity', 'keys', 'alice', 'add', 'ssh-ed25519 AAAAC3Nza alice@laptop']), 0, 'alice adds her own key');
    expectCode(await asRoot(['group', 'create', 'everyone']), 0, 'create everyone');
    expectCode(await asRoot(['group', 'expansions', 'everyone', 'add', 'INCLUDE', 'creators']), 0, 'expansion');
    assert.deepEqual(
      JSON.parse(expectCode(await asRoot(['--json', 'entity', 'groups', 'alice', '--indirect']), 0, 'indirect groups').stdout).sort(),
      ['creators', 'everyone'],
    );

    expectCode(await asRoot(['entity', 'destroy', 'bob']), 0, 'destroy bob');
    const gone = expectCode(await asRoot(['entity', 'info', 'bob']), 1, 'bob is gone');
    assert.match(gone.stderr, /KH_ERR_ENTITY_NOT_FOUND/);

    // Usage errors exit 2; help exits 0.
    expectCode(await asRoot(['entity', 'caps', 'alice', 'add', 'NOT_A_CAPABILITY']), 2, 'unknown capability');
    expectCode(await asRoot(['no-such-command']), 2, 'unknown command');
    expectCode(await asRoot(['entity', 'set-secret', 'alice']), 2, 'no terminal and no --secret-stdin');
    assert.match(expectCode(await asRoot(['entity', '--help']), 0, 'help').stdout, /set-secret/);

    assert.equal(await server.stop(), 0, 'SIGTERM shuts the server down cleanly');

    // The same port, so that the login saved for this server URL applies (and shows the signing key persisted).
    server = await startServerProcess({ ...env, KEYHOLD_PORT: new URL(server.url).port });
    const status = JSON.parse(
      expectCode(await asRoot(['--json', 'system', 'status']), 0, 'status after restart with the saved token').stdout,
    );
    assert.equal(status.entities, 3);
    const alice = JSON.parse(expectCode(await asRoot(['--json', 'entity', 'info', 'alice']), 0, 'alice after restart').stdout);
    assert.equal(alice.meta.displayName, 'Alice Example');
    assert.deepEqual(alice.meta.groups, ['creators']);
    assert.equal(alice.meta.shell, '/bin/zsh');
    assert.deepEqual(alice.meta.untypedMeta, ['dept:research']);
    assert.deepEqual(alice.meta.kv, { phone: { values: ['+1 555', '+1 556'] } });
    assert.deepEqual(alice.meta.keys, ['ssh-ed25519 AAAAC3Nza alice@laptop']);
    assert.deepEqual(
      JSON.parse(expectCode(await asRoot(['--json', 'group', 'members', 'everyone']), 0, 'members through the expansion').stdout),
      ['alice'],
    );
    assert.equal(alice.secret, undefined, 'the secret hash is never sent');
    const group = JSON.parse(expectCode(await asRoot(['--json', 'group', 'info', 'creators']), 0, 'group after restart').stdout);
    assert.deepEqual(group.capabilities, ['CREATE_ENTITY']);
    expectCode(await asRoot(['auth', 'check', 'alice', '--secret-stdin'], 'alice-secret\n'), 0, 'alice secret after restart');
    expectCode(await asRoot(['entity', 'info', 'bob']), 1, 'bob still gone');
    expectCode(
      await asAlice(['auth', 'change-secret', 'alice', '--secret-stdin'], 'alice-secret\nalice-secret-2\n'),
      0,
      'self-service secret change',
    );
    expectCode(await asRoot(['auth', 'check', 'alice', '--secret-stdin'], 'alice-secret\n'), 1, 'the old secret no longer works');
    expectCode(await asRoot(['auth', 'check', 'alice', '--secret-stdin'], 'alice-secret-2\n'), 0, 'the new one does');
    const search = JSON.parse(expectCode(await asRoot(['--json', 'entity', 'search']), 0, 'search').stdout);
    assert.deepEqual(
      search.map((e: { id: string }) => e.id),
      ['alice', 'carol', 'root'],
    );
    assert.equal(JSON.parse(expectCode(await asRoot(['--json', 'auth', 'token']), 0, 'token').stdout).id, 'root');
    expectCode(await asRoot(['auth', 'logout']), 0, 'logout');
    assert.match(expectCode(await asRoot(['entity', 'info', 'alice']), 1, 'logged out').stderr, /KH_ERR_UNAUTHENTICATED/);
    assert.equal(await server.stop(), 0);
  });

  it('auth logout ends every session on the server, and forgets the token even when the server cannot revoke it', async () => {
    const server = await startTestServer('root-secret');
    try {
      const env = { KEYHOLD_SERVER: server.url, XDG_CONFIG_HOME: scratchDir('e2e-logout') };
      const cli = (args: string[], stdin = '') => runCli(args, env, stdin);
      const whoami = (token: string) => call(server.url, 'GET', '/v1/auth/whoami', { token });
      expectCode(await cli(['auth', 'login', 'root', '--secret-stdin'], 'root-secret\n'), 0, 'login');
      const saved = expectCode(await cli(['auth', 'token', '--raw']), 0, 'raw token').stdout.trim();
      const otherSession = await login(server.url, 'root', 'root-secret');
      assert.match(expectCode(await cli(['auth', 'logout']), 0, 'logout').stdout, /logged out of .*: every session of root has ended/);
      assert.equal((await whoami(saved)).body.code, 'KH_ERR_TOKEN_REVOKED', 'the saved token was revoked on the server');
      assert.equal((await whoami(otherSession)).body.code, 'KH_ERR_TOKEN_REVOKED', 'and every other session of root');
      assert.match(expectCode(await cli(['auth', 'logout']), 0, 'logout again').stdout, /no saved login/);

      // Revoked meanwhile (a logout elsewhere): nothing left to revoke, the token is forgotten.
      expectCode(await cli(['auth', 'login', 'root', '--secret-stdin'], 'root-secret\n'), 0, 'login again');
      assert.equal(
        (await call(server.url, 'POST', '/v1/auth/logout', { token: await login(server.url, 'root', 'root-secret') })).status,
        204,
      );
      assert.match(
        expectCode(await cli(['auth', 'logout']), 0, 'logout with a revoked token').stdout,
        /no longer valid \(KH_ERR_TOKEN_REVOKED\)/,
      );

      expectCode(await cli(['auth', 'login', 'root', '--secret-stdin'], 'root-secret\n'), 0, 'login before the server stops');
      await server.close();
      const unreachable = expectCode(await cli(['auth', 'logout']), 1, 'logout without a server');
      assert.match(
        unreachable.stderr,
        /the server did not revoke the token \(cannot reach the keyhold server .*\): it stays valid until \d{4}-.*; the saved login was forgotten anyway/,
      );
      assert.match(expectCode(await cli(['auth', 'logout']), 0, 'forgotten locally').stdout, /no saved login/);
    } finally {
      await server.close();
    }
  });

  it('refuses to serve with a bad configuration or an unprotected public address (exit 2)', async () => {
    const dataDir = scratchDir('e2e-badcfg');
    const badPort = expectCode(await runCli(['serve'], serverEnv(dataDir, { KEYHOLD_PORT: 'eighty' })), 2, 'bad port');
    assert.match(badPort.stderr, /bad configuration: KEYHOLD_PORT: listen\.port: expected an integer/);
    const publicHost = expectCode(
      await runCli(['serve'], serverEnv(dataDir, { KEYHOLD_HOST: '0.0.0.0' })),
      2,
      'public address without TLS',
    );
    assert.match(publicHost.stderr, /0\.0\.0\.0 is reachable from other machines, so it needs tls\.cert and tls\.key/);
    const missing = expectCode(await runCli(['serve', '--config', `${dataDir}/nope.yaml`], serverEnv(dataDir)), 2, 'missing config file');
    assert.match(missing.stderr, /nope\.yaml: \(file\): no such file; check the path given to --config/);
  });

  it('shows the generated root secret even when the first start then fails on a plugin', async () => {
    const dataDir = scratchDir('e2e-brokenplugin');
    const pluginDir = join(dataDir, 'plugins');
    mkdirSync(pluginDir);
    symlinkSync(fixture('exits-during-start'), join(pluginDir, 'broken'));
    const env = serverEnv(join(dataDir, 'data'), { KEYHOLD_PLUGIN_DIR: pluginDir });
    const failed = expectCode(await runCli(['serve'], env), 2, 'a plugin fails to load (a deployment to fix: exit 2)');
    assert.match(failed.stderr, /broken/);
    const secret = /secret: (\S+)/.exec(failed.stdout)?.[1];
    assert.ok(secret, 'the secret was shown before the start failed');
    rmSync(join(pluginDir, 'broken'));
    const server = await startServerProcess(env);
    assert.doesNotMatch(server.stdout(), /secret:/);
    expectCode(
      await runCli(['auth', 'check', 'root', '--secret-stdin'], { KEYHOLD_SERVER: server.url }, `${secret}\n`),
      0,
      'the shown secret works',
    );
    await server.stop();
  });

  it('prints a generated root secret once, on the first start only', async () => {
    const dataDir = scratchDir('e2e-boot');
    const env = serverEnv(dataDir);
    let server = await startServerProcess(env);
    const secret = /secret: (\S+)/.exec(server.stdout())?.[1];
    assert.ok(secret && secret.length >= 32, 'a strong secret is printed');
    assert.match(server.stdout(), /keyhold auth login root/);
    const home = scratchDir('e2e-boot-home');
    expectCode(
      await runCli(['auth', 'login', 'root', '--secret-stdin'], { KEYHOLD_SERVER: server.url, XDG_CONFIG_HOME: home }, `${secret}\n`),
      0,
      'login with the printed secret',
    );
    await server.stop();
    server = await startServerProcess(env);
    assert.doesNotMatch(server.stdout(), /secret:/);
    await server.stop();
  });
});
