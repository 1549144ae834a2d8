// The server around the routes: configuration (file, environment, errors naming source and key),
// safe listen defaults, request ids, secret redaction in logs, health, metrics and OpenAPI.
import assert from 'node:assert/strict';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { checkListenSafety, loadConfig } from '../../src/config.js';
import { DEFAULT_HASH_SLOTS } from '../../src/identity/hash-slots.js';
import { DEFAULT_LOGIN_THROTTLE } from '../../src/identity/login-throttle.js';
import { DATABASE_FILE, startServer } from '../../src/server.js';
import { configError } from '../support/config-errors.js';
import { call, login, scratchDir, serverEnv } from '../support/keyhold.js';

describe('configuration', () => {
  it('has a default for everything', () => {
    const cwd = scratchDir('cfg');
    const config = loadConfig({ env: {}, cwd });
    assert.equal(config.file, null);
    assert.deepEqual(config.listen, { host: '127.0.0.1', port: 8470 });
    assert.equal(config.tls, null);
    assert.equal(config.insecure, false);
    assert.equal(config.dataDir, join(cwd, 'data'));
    assert.equal(config.tokenTtlMs, 600_000);
    assert.equal(config.logLevel, 'info');
    assert.deepEqual(config.hash, { memoryCost: 19456, timeCost: 2, parallelism: 1 });
    assert.equal(config.bodyLimitBytes, 64 * 1024);
    assert.equal(config.plugins.directory, join(cwd, 'plugins'));
  });

  it('reads ./keyhold.yaml, and the environment overrides it', () => {
    const cwd = scratchDir('cfg');
    writeFileSync(
      join(cwd, 'keyhold.yaml'),
      'listen:\n  port: 9000\ntokenTtl: 2m\nlogLevel: debug\nbodyLimit: 1mb\nplugins:\n  directory: my-plugins\n',
    );
    const fromFile = loadConfig({ env: {}, cwd });
    assert.equal(fromFile.file, join(cwd, 'keyhold.yaml'));
    assert.equal(fromFile.listen.port, 9000);
    assert.equal(fromFile.tokenTtlMs, 120_000);
    assert.equal(fromFile.bodyLimitBytes, 1024 * 1024);
    assert.equal(fromFile.plugins.directory, join(cwd, 'my-plugins'));
    const overridden = loadConfig({
      env: { KEYHOLD_LISTEN: '0.0.0.0:7000', KEYHOLD_TOKEN_TTL: '30s', KEYHOLD_LOG_LEVEL: 'warn', KEYHOLD_INSECURE: 'true' },
      cwd,
    });
    assert.deepEqual(overridden.listen, { host: '0.0.0.0', port: 7000 });
    assert.equal(overridden.tokenTtlMs, 30_000);
    assert.equal(overridden.logLevel, 'warn');
    assert.equal(overridden.insecure, true);
  });

  it('names the file, the key path and the problem', () => {
    const cwd = scratchDir('cfg');
    const file = join(cwd, 'custom.yaml');
    const cases: [string, string, RegExp][] = [
      ['listen:\n  prot: 1\n', 'listen.prot', /unknown key \(did you mean "port"\?\); expected one of host, port/],
      ['loglevel: warn\n', 'loglevel', /unknown key \(did you mean "logLevel"\?\); expected one of listen, .*, plugins$/],
      ['pluginz:\n  directory: x\n', 'pluginz', /did you mean "plugins"/],
      ['listen:\n  port: "http"\n', 'listen.port', /integer from 0 to 65535/],
      ['tokenTtl: soon\n', 'tokenTtl', /duration/],
      ['hash:\n  timeCost: 0\n', 'hash.timeCost', /from 1 to 100/],
      ['logLevel: loud\n', 'logLevel', /one of trace/],
      ['tls:\n  cert: a.pem\n', 'tls', /both cert and key/],
      ['plugins:\n  direktory: x\n', 'plugins.direktory', /unknown key/],
      ['mystery: 1\n', 'mystery', /^unknown key; expected one of /],
      ['events:\n  leaseTtl: 4s\n  leaseRenew: 3s\n', 'events.leaseRenew', /at most half of events\.leaseTtl \(4000 ms\)/],
      ['events:\n  leaseTtl: 50ms\n', 'events.leaseTtl', /duration/],
    ];
    for (const [yaml, path, problem] of cases) {
      writeFileSync(file, yaml);
      const err = configError(() => loadConfig({ file, env: {}, cwd }));
      assert.equal(err.source, file, yaml);
      assert.equal(err.path, path, yaml);
      assert.match(err.problem, problem, yaml);
    }
    writeFileSync(file, 'listen: [\n');
    assert.match(configError(() => loadConfig({ file, env: {}, cwd })).message, /custom\.yaml:\d+:\d+: \(file\): not valid YAML/);
    writeFileSync(file, 'listen: port: 1\n');
    const badYaml = configError(() => loadConfig({ file, env: {}, cwd }));
    assert.match(badYaml.message, /^.*custom\.yaml:1:\d+: \(file\): not valid YAML: \S.*[^:]$/, 'no dangling "at line …, column …:"');
    assert.doesNotMatch(badYaml.message, /column \d+:?$/);
    const fromEnv = configError(() => loadConfig({ env: { KEYHOLD_PORT: 'eighty' }, cwd }));
    assert.equal(fromEnv.source, 'KEYHOLD_PORT');
    assert.equal(fromEnv.path, 'listen.port');
    assert.match(
      configError(() => loadConfig({ file: join(cwd, 'missing.yaml'), env: {}, cwd })).problem,
      /^no such file; check the path given to --config$/,
    );
    assert.match(configError(() => loadConfig({ env: { KEYHOLD_CONFIG: join(cwd, 'missing.yaml') }, cwd })).problem, /KEYHOLD_CONFIG/);
  });

  it('reads the login throttle and the argon2 bound: on by default, from the file and the environment, checked', () => {
    const cwd = scratchDir('cfg');
    const defaults = loadConfig({ env: {}, cwd });
    assert.deepEqual(defaults.loginThrottle, DEFAULT_LOGIN_THROTTLE);
    assert.equal(defaults.loginThrottle.enabled, true);
    assert.deepEqual(defaults.hashSlots, DEFAULT_HASH_SLOTS);
    writeFileSync(
      join(cwd, 'keyhold.yaml'),
      'loginThrottle:\n  softLockAfter: 20\n  softLockDuration: 2h\n  familiarFor: 14d\nhash:\n  queue: 8\n',
    );
    const config = loadConfig({ env: { KEYHOLD_LOGIN_THROTTLE_BASE_DELAY: '250ms', KEYHOLD_HASH_CONCURRENCY: '3' }, cwd });
    assert.deepEqual(config.loginThrottle, {
      ...DEFAULT_LOGIN_THROTTLE,
      baseDelayMs: 250,
      softLockAfter: 20,
      softLockMs: 7_200_000,
      familiarForMs: 14 * 86_400_000,
    });
    assert.deepEqual(config.hashSlots, { concurrency: 3, queue: 8 });
    assert.deepEqual(config.hash, { memoryCost: 19456, timeCost: 2, parallelism: 1 }, 'the argon2 parameters alone');
    assert.equal(loadConfig({ env: { KEYHOLD_LOGIN_THROTTLE: 'false' }, cwd }).loginThrottle.enabled, false);
    const tooLong = configError(() => loadConfig({ env: { KEYHOLD_LOGIN_THROTTLE_BASE_DELAY: '2m' }, cwd }));
    assert.deepEqual([tooLong.source, tooLong.path], ['KEYHOLD_LOGIN_THROTTLE_BASE_DELAY', 'loginThrottle.baseDelay']);
    assert.match(tooLong.problem, /expected a duration from 0ms to 60s, got "2m"/);
    assert.match(configError(() => loadConfig({ env: { KEYHOLD_HASH_CONCURRENCY: '0' }, cwd })).problem, /integer from 1 to 256/);
  });

  it('refuses a non-loopback address without TLS unless told it is insecure', () => {
    const cwd = scratchDir('cfg');
    assert.equal(checkListenSafety(loadConfig({ env: {}, cwd })), null);
    assert.equal(checkListenSafety(loadConfig({ env: { KEYHOLD_HOST: '::1' }, cwd })), null);
    assert.match(
      configError(() => checkListenSafety(loadConfig({ env: { KEYHOLD_HOST: '0.0.0.0' }, cwd }))).problem,
      /needs tls\.cert and tls\.key/,
    );
    assert.match(checkListenSafety(loadConfig({ env: { KEYHOLD_HOST: '0.0.0.0', KEYHOLD_INSECURE: 'true' }, cwd })) ?? '', /INSECURE/);
    assert.equal(
      checkListenSafety(loadConfig({ env: { KEYHOLD_HOST: '10.1.2.3', KEYHOLD_TLS_CERT: 'c.pem', KEYHOLD_TLS_KEY: 'k.pem' }, cwd })),
      null,
    );
  });
});

describe('server', () => {
  it('logs request ids on every request line, returns them, and never logs a secret', async () => {
    let logText = '';
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logText += chunk.toString();
        done();
      },
    });
    const dataDir = scratchDir('srv');
    const handle = await startServer({
      env: serverEnv(dataDir, { KEYHOLD_BOOTSTRAP: 'root:bootstrap-secret-xyz' }),
      logger: pino({ level: 'debug' }, sink),
    });
    try {
      const token = await login(handle.url, 'root', 'bootstrap-secret-xyz');
      const created = await call(handle.url, 'POST', '/v1/entities', { token, body: { id: 'logged', secret: 'entity-secret-abc' } });
      assert.equal(created.status, 201);
      const response = await fetch(`${handle.url}/v1/entities/logged`, { headers: { authorization: `Bearer ${token}` } });
      const requestId = response.headers.get('x-request-id');
      assert.match(requestId ?? '', /^[0-9a-f-]{36}$/);
      await call(handle.url, 'POST', '/v1/auth/change-secret', {
        body: { id: 'logged', oldSecret: 'entity-secret-abc', newSecret: 'entity-secret-def' },
      });
      await call(handle.url, 'POST', '/v1/entities', { token: 'not-a-token', body: { id: 'x', secret: 'refused-secret-ghi' } });

      const lines = logText
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const requestLines = lines.filter((l) => l.req !== undefined || l.res !== undefined);
      assert.ok(requestLines.length >= 8);
      for (const line of requestLines) assert.equal(typeof line.reqId, 'string', JSON.stringify(line));
      assert.ok(
        lines.some((l) => l.reqId === requestId),
        'the returned request id is the one logged',
      );
      for (const secret of ['bootstrap-secret-xyz', 'entity-secret-abc', 'entity-secret-def', 'refused-secret-ghi', token])
        assert.ok(!logText.includes(secret), `the log contains ${secret}`);
    } finally {
      await handle.close();
    }
  });

  it('serves health, metrics and the OpenAPI document', async () => {
    const dataDir = scratchDir('srv');
    const handle = await startServer({ env: serverEnv(dataDir, { KEYHOLD_BOOTSTRAP: 'root:pw' }), logger: pino({ level: 'silent' }) });
    try {
      const health = await call(handle.url, 'GET', '/healthz');
      assert.equal(health.status, 200);
      assert.deepEqual(health.body, { status: 'ok' }, 'without a token, only the status');
      const detailed = await call(handle.url, 'GET', '/healthz', { token: await login(handle.url, 'root', 'pw') });
      assert.equal(detailed.status, 200);
      assert.deepEqual(detailed.body, { status: 'ok', store: { reads: 'ok', writes: 'ok', queuedWrites: 0 }, plugins: [] });
      const forged = await call(handle.url, 'GET', '/healthz', { token: 'not-a-token' });
      assert.equal(forged.status, 401, 'a token that is not valid is refused, not ignored');
      await call(handle.url, 'GET', '/v1/entities');
      const metrics = await call(handle.url, 'GET', '/metrics');
      assert.match(metrics.text, /keyhold_http_requests_total\{method="GET",route="\/v1\/entities",status="401"\} 1/);
      assert.match(metrics.text, /keyhold_process_cpu_seconds_total/);
      const doc = await call(handle.url, 'GET', '/openapi.json');
      assert.equal(doc.body.openapi.startsWith('3.'), true);
      const create = doc.body.paths['/v1/entities'].post;
      assert.deepEqual(create.requestBody.content['application/json'].schema.required, ['id']);
      assert.equal(create.requestBody.content['application/json'].schema.additionalProperties, false);
      const capability =
        doc.body.paths['/v1/entities/{id}/capabilities'].post.requestBody.content['application/json'].schema.properties.value;
      assert.equal(capability.enum.length, 12);
    } finally {
      await handle.close();
    }
  });

  it('keeps tokens valid across a restart (the signing key is kept in the database, mode 0600, not in a file of its own)', async () => {
    const dataDir = scratchDir('srv');
    const env = serverEnv(dataDir, { KEYHOLD_BOOTSTRAP: 'root:pw' });
    let handle = await startServer({ env, logger: pino({ level: 'silent' }) });
    const token = await login(handle.url, 'root', 'pw');
    await handle.close();
    assert.equal(statSync(join(dataDir, DATABASE_FILE)).mode & 0o777, 0o600);
    assert.equal(existsSync(join(dataDir, 'token-signing-key.pem')), false);
    handle = await startServer({ env, logger: pino({ level: 'silent' }) });
    try {
      assert.equal((await call(handle.url, 'GET', '/v1/auth/whoami', { token })).status, 200);
    } finally {
      await handle.close();
    }
  });

  it('expires tokens after the configured lifetime', async () => {
    const dataDir = scratchDir('srv');
    const handle = await startServer({
      env: serverEnv(dataDir, { KEYHOLD_BOOTSTRAP: 'root:pw', KEYHOLD_TOKEN_TTL: '1s' }),
      logger: pino({ level: 'silent' }),
    });
    try {
      const response = await call(handle.url, 'POST', '/v1/auth/token', { body: { id: 'root', secret: 'pw' } });
      const lifetime = Date.parse(response.body.expiresAt) - Date.now();
      assert.ok(lifetime <= 1000, `expires in ${lifetime} ms`);
      // Expiry has a resolution of one second.
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, lifetime) + 1100));
      const expired = await call(handle.url, 'GET', '/v1/auth/whoami', { token: response.body.token });
      assert.equal(expired.status, 401);
      assert.equal(expired.body.code, 'KH_ERR_TOKEN_EXPIRED');
    } finally {
      await handle.close();
    }
  });
});
