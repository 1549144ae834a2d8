// Login throttling and uniform answers against real servers, with clients on several loopback
// addresses (127.0.0.2, .3, …): refusals without argon2, the owner at a familiar address, one
// answer for every refusal, the log and the metric that tell them apart, the delay running out,
// and throttle state surviving a restart of the server process.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { startServer, type ServerHandle } from '../../src/server.js';
import { call, capturingLogger, killChildren, login, postFrom, scratchDir, serverEnv, startServerProcess } from '../support/keyhold.js';

after(killChildren);

const ROOT_SECRET = 'root-secret-for-throttle-tests';
const ALICE_SECRET = 'alice-secret-1';
const LOCKIE_SECRET = 'lockie-secret-1';

async function metric(url: string, series: string): Promise<number> {
  const text = (await call(url, 'GET', '/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

const verifications = (url: string) => metric(url, 'keyhold_secret_hashing_total{operation="verify"}');
const failures = (url: string, reason: string) => metric(url, `keyhold_auth_failures_total{reason="${reason}"}`);
const check = (from: string, url: string, id: string, secret: string) => postFrom(from, url, '/v1/auth/check', { id, secret });

interface LoggedServer {
  handle: ServerHandle;
  logs: Record<string, unknown>[];
  token: string;
}

/** An in-process server whose log records the test can read, with root logged in and alice and a locked lockie created. */
async function startLogged(baseDelay: string): Promise<LoggedServer> {
  const { logger, records: logs } = capturingLogger('info');
  const env = serverEnv(scratchDir('throttle'), { KEYHOLD_BOOTSTRAP: `root:${ROOT_SECRET}`, KEYHOLD_LOGIN_THROTTLE_BASE_DELAY: baseDelay });
  const handle = await startServer({ env, logger });
  const token = await login(handle.url, 'root', ROOT_SECRET);
  for (const [id, secret] of [
    ['alice', ALICE_SECRET],
    ['lockie', LOCKIE_SECRET],
  ]) {
    assert.equal((await call(handle.url, 'POST', '/v1/entities', { token, body: { id, secret } })).status, 201);
  }
  assert.equal((await call(handle.url, 'POST', '/v1/entities/lockie/lock', { token })).status, 200);
  return { handle, logs, token };
}

describe('login throttling (delays far longer than the test)', () => {
  let server: LoggedServer;
  let url: string;
  before(async () => {
    server = await startLogged('60s');
    url = server.handle.url;
    // Alice's own address: 127.0.0.1 becomes familiar.
    assert.equal((await check('127.0.0.1', url, 'alice', ALICE_SECRET)).status, 200);
  });
  after(() => server.handle.close());

  it('refuses attempts after a wrong secret without running argon2, the right secret too, and counts them as throttled', async () => {
    const before = {
      verifications: await verifications(url),
      throttled: await failures(url, 'throttled'),
      wrong: await failures(url, 'wrong_secret'),
    };
    const wrong = await check('127.0.0.2', url, 'alice', 'guess-1');
    const right = await check('127.0.0.2', url, 'alice', ALICE_SECRET);
    const again = await check('127.0.0.2', url, 'alice', 'guess-2');
    assert.equal(wrong.status, 401);
    assert.equal(right.status, 401, 'the right secret is refused during the delay');
    assert.equal(right.text, wrong.text);
    assert.equal(again.text, wrong.text);
    assert.equal(await verifications(url), before.verifications + 1, 'no argon2 for a throttled attempt');
    assert.equal(await failures(url, 'throttled'), before.throttled + 2);
    assert.equal(await failures(url, 'wrong_secret'), before.wrong + 1);
    // The other routes that take a secret are behind the same throttle.
    const token = await postFrom('127.0.0.2', url, '/v1/auth/token', { id: 'alice', secret: ALICE_SECRET });
    const change = await postFrom('127.0.0.2', url, '/v1/auth/change-secret', {
      id: 'alice',
      oldSecret: ALICE_SECRET,
      newSecret: 'taken-over-1',
    });
    assert.deepEqual([token.status, token.text, change.status, change.text], [401, wrong.text, 401, wrong.text]);
    assert.equal(await verifications(url), before.verifications + 1);
  });

  it("lets the owner in from her familiar address while a third party's failure delays unfamiliar ones", async () => {
    const unfamiliar = await check('127.0.0.3', url, 'alice', ALICE_SECRET);
    assert.equal(unfamiliar.status, 401, 'the id is delayed for an address alice never logged in from');
    const record = server.logs.find((r) => r.reqId !== undefined && r.address === '127.0.0.3' && r.reason === 'throttled');
    assert.deepEqual((record?.detail as { key?: string } | undefined)?.key, 'id', 'the log says which key refused it');
    assert.equal((await check('127.0.0.1', url, 'alice', ALICE_SECRET)).status, 200, 'the owner at home is not delayed');
  });

  it('answers an unknown id, a wrong secret, a locked entity and a throttled attempt byte for byte alike, and logs the real reason', async () => {
    const attempts = {
      unknown: ['127.0.0.4', 'nobody', 'whatever-1'],
      wrong_secret: ['127.0.0.5', 'alice', 'guess-3'],
      locked: ['127.0.0.6', 'lockie', LOCKIE_SECRET],
      throttled: ['127.0.0.4', 'nobody', 'whatever-2'],
    } as const;
    const answers: { reason: string; from: string; id: string; answer: Awaited<ReturnType<typeof check>> }[] = [];
    for (const [reason, [from, id, secret]] of Object.entries(attempts))
      answers.push({ reason, from, id, answer: await check(from, url, id, secret) });
    const shape = ({ answer: a }: (typeof answers)[number]) => ({
      status: a.status,
      text: a.text,
      type: a.headers['content-type'],
      length: a.headers['content-length'],
    });
    for (const attempt of answers) assert.deepEqual(shape(attempt), shape(answers[0]!), `the answer for ${attempt.reason}`);
    assert.deepEqual(answers[0]!.answer.body, { code: 'KH_ERR_AUTH_FAILED', message: 'unknown entity or wrong secret' });
    for (const { reason, from, id, answer } of answers) {
      const requestId = answer.headers['x-request-id'];
      const record = server.logs.find((r) => r.reqId === requestId && r.reason === reason);
      assert.deepEqual(
        record && { entity: record.entity, address: record.address },
        { entity: id, address: from },
        `the log record of request ${String(requestId)}, reason ${reason}`,
      );
    }
    assert.equal(await failures(url, 'locked'), 1);
    assert.equal(await failures(url, 'unknown'), 1);
  });
});

describe('login throttling (a short delay)', () => {
  let server: LoggedServer;
  before(async () => {
    server = await startLogged('2s');
  });
  after(() => server.handle.close());

  it('lets the right secret in once the delay has run out, without counting the refused attempts', async () => {
    const url = server.handle.url;
    assert.equal((await check('127.0.0.2', url, 'alice', 'guess-1')).status, 401);
    assert.equal((await check('127.0.0.2', url, 'alice', ALICE_SECRET)).status, 401, 'refused during the delay');
    let accepted = false;
    for (let poll = 0; poll < 100 && !accepted; poll++) {
      accepted = (await check('127.0.0.2', url, 'alice', ALICE_SECRET)).status === 200;
      if (!accepted) await sleep(100);
    }
    assert.ok(accepted, 'accepted after the delay, although polled all along');
    assert.equal(await failures(url, 'wrong_secret'), 1);
  });
});

describe('login throttling across a restart', () => {
  it('keeps refusing a delayed address after the server process restarts on the same data directory', async () => {
    const env = {
      ...serverEnv(scratchDir('throttle-restart'), { KEYHOLD_LOGIN_THROTTLE_BASE_DELAY: '60s' }),
      KEYHOLD_BOOTSTRAP: `root:${ROOT_SECRET}`,
    };
    let server = await startServerProcess(env);
    try {
      const token = await login(server.url, 'root', ROOT_SECRET);
      assert.equal((await call(server.url, 'POST', '/v1/entities', { token, body: { id: 'alice', secret: ALICE_SECRET } })).status, 201);
      assert.equal((await check('127.0.0.2', server.url, 'alice', 'guess-1')).status, 401);
      assert.equal(await server.stop(), 0);
      server = await startServerProcess(env);
      const refused = await check('127.0.0.2', server.url, 'alice', ALICE_SECRET);
      assert.equal(refused.status, 401);
      assert.equal(await failures(server.url, 'throttled'), 1);
      assert.equal(await verifications(server.url), 0, 'refused before any argon2');
      const record = server
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((r) => r.reason === 'throttled');
      assert.deepEqual(record && { entity: record.entity, address: record.address, reqId: record.reqId }, {
        entity: 'alice',
        address: '127.0.0.2',
        reqId: refused.headers['x-request-id'],
      });
    } finally {
      await server.stop();
    }
  });
});
