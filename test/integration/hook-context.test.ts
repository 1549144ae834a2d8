// What a plugin is told about each request, seen by a real plugin process (context-recorder) in a
// real server: where the request came from (the TCP peer, or the address a trusted proxy forwarded,
// never one a client merely claims), its user agent, how it came (token, login, forward auth, the
// server), what the CLI says it is (all of these in the request's committed events too), the object
// as it was before an update on POST and committed hooks, only operations of the typed list, and
// never a secret or a hash in any of it.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { hookSpec, isCommittedHookName, operationProblem, type CommittedEvent, type Entity, type HookContext } from 'keyhold-plugin-sdk';
import YAML from 'yaml';
import { startServer, type ServerHandle } from '../../src/server.js';
import { VERSION } from '../../src/version.js';
import { fixture } from '../fixtures/plugin-host.js';
import { call, expectCode, killChildren, login, postFrom, runCli, scratchDir } from '../support/keyhold.js';

after(killChildren);

const ROOT_SECRET = 'root-secret-for-context-tests';
const ALICE_SECRET = 'alice-secret-context-1';
const BOB_SECRET = 'bob-secret-context-1';
const NEW_SECRET = 'alice-secret-context-2';
/** The only peer whose X-Forwarded-For is believed. */
const PROXY = '127.0.0.2';

type Recorded = { hook: string; subject?: Entity; context?: HookContext<Entity>; event?: CommittedEvent<Entity> };

describe('the context hooks get', () => {
  let server: ServerHandle;
  let url: string;
  let root: string;
  let file: string;

  const records = (): Recorded[] =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Recorded);
  /** The PRE/POST calls of one request, by hook. */
  const callsOf = (requestId: string) =>
    Object.fromEntries(records().flatMap((r) => (r.context?.requestId === requestId ? [[r.hook, r]] : []))) as Record<string, Recorded>;
  /** The committed event of `hook` for one request, once delivered (bounded wait: delivery follows the commit). */
  async function committed(hook: string, requestId: string): Promise<CommittedEvent<Entity>> {
    for (let i = 0; i < 100; i++) {
      const found = records().find((r) => r.hook === hook && r.event?.requestId === requestId);
      if (found) return found.event!;
      await sleep(50);
    }
    return assert.fail(`no ${hook} delivered for request ${requestId}`);
  }

  before(async () => {
    const dir = scratchDir('hook-context');
    const plugins = join(dir, 'plugins');
    file = join(dir, 'calls.jsonl');
    mkdirSync(plugins);
    writeFileSync(file, '');
    symlinkSync(fixture('context-recorder'), join(plugins, 'ctx'));
    const config = {
      listen: { host: '127.0.0.1', port: 0 },
      dataDir: join(dir, 'data'),
      hash: { memoryCost: 256, timeCost: 1 },
      plugins: { directory: plugins, plugins: { ctx: { config: { file } } } },
      api: { trustedProxies: [PROXY] },
      // Far longer than the test: a failed login delays the next from its address for the whole test.
      loginThrottle: { baseDelay: '60s' },
    };
    writeFileSync(join(dir, 'keyhold.yaml'), YAML.stringify(config));
    server = await startServer({ cwd: dir, env: { KEYHOLD_BOOTSTRAP: `root:${ROOT_SECRET}` }, print: () => undefined });
    url = server.url;
    root = await login(url, 'root', ROOT_SECRET);
    for (const [id, secret] of [
      ['alice', ALICE_SECRET],
      ['bob', BOB_SECRET],
    ])
      assert.equal((await call(url, 'POST', '/v1/entities', { token: root, body: { id, secret, meta: { displayName: id } } })).status, 201);
  });
  after(() => server?.close());

  it('an API request: source api, the peer as address (its X-Forwarded-For ignored), its user agent; before on POST and committed', async () => {
    const response = await fetch(`${url}/v1/entities/alice`, {
      method: 'PATCH',
      headers: {
        authorization: `Bearer ${root}`,
        'content-type': 'application/json',
        'user-agent': 'context-test/1.0',
        'x-forwarded-for': '203.0.113.9',
      },
      body: JSON.stringify({ displayName: 'Alice Two' }),
    });
    assert.equal(response.status, 200);
    const requestId = response.headers.get('x-request-id')!;
    const calls = callsOf(requestId);
    const seen = {
      requestId,
      operation: 'entity.update-meta',
      caller: 'root',
      source: 'api',
      clientAddress: '127.0.0.1',
      userAgent: 'context-test/1.0',
    };
    // PRE sees the stored object as its subject: no `before` beside it.
    assert.deepEqual(calls.preEntityUpdate?.context, seen);
    assert.equal(calls.preEntityUpdate?.subject?.meta.displayName, 'alice');
    const post = calls.postEntityUpdate!;
    assert.equal(post.subject?.meta.displayName, 'Alice Two');
    assert.equal(post.context?.before?.meta.displayName, 'alice');
    assert.deepEqual({ ...post.context, before: undefined }, { ...seen, before: undefined });
    const event = await committed('committedEntityUpdate', requestId);
    assert.deepEqual([event.before?.meta.displayName, event.after?.meta.displayName], ['alice', 'Alice Two']);
    assert.deepEqual(event.before, post.context?.before, 'POST hooks and committed events name the same object `before`');
    // The committed event says where the request came from, as its hooks were told; /v1/events shows it.
    const origin = (e: Partial<CommittedEvent>) => [e.source, e.clientAddress, e.userAgent, e.client];
    assert.deepEqual(origin(event), ['api', '127.0.0.1', 'context-test/1.0', undefined]);
    const shown = await call(url, 'GET', `/v1/events/${event.seq}`, { token: root });
    assert.equal(shown.status, 200, shown.text);
    assert.deepEqual(origin(shown.body), origin(event));
  });

  it('a login through the trusted proxy: the address it forwarded; from any other peer: the peer, whatever it claims', async () => {
    const viaProxy = await postFrom(
      PROXY,
      url,
      '/v1/auth/check',
      { id: 'alice', secret: ALICE_SECRET },
      { 'x-forwarded-for': '198.51.100.7' },
    );
    assert.equal(viaProxy.status, 200);
    const proxied = callsOf(viaProxy.headers['x-request-id'] as string).preAuthCheck?.context;
    assert.deepEqual([proxied?.source, proxied?.caller, proxied?.clientAddress], ['login', null, '198.51.100.7']);
    const event = await committed('committedAuthCheck', viaProxy.headers['x-request-id'] as string);
    assert.deepEqual(
      [event.source, event.caller, event.clientAddress],
      ['login', null, '198.51.100.7'],
      'its event: the forwarded address',
    );
    const spoofed = await postFrom(
      '127.0.0.3',
      url,
      '/v1/auth/check',
      { id: 'alice', secret: ALICE_SECRET },
      { 'x-forwarded-for': '198.51.100.8' },
    );
    assert.equal(spoofed.status, 200);
    assert.equal(callsOf(spoofed.headers['x-request-id'] as string).preAuthCheck?.context?.clientAddress, '127.0.0.3');
  });

  it('forward auth: source forward-auth, the end user as the trusted proxy forwarded it', async () => {
    const basic = `Basic ${Buffer.from(`alice:${ALICE_SECRET}`).toString('base64')}`;
    const answer = await postFrom(
      PROXY,
      url,
      '/v1/forward-auth',
      {},
      { authorization: basic, 'x-forwarded-for': '198.51.100.20', 'user-agent': 'Browser/5' },
    );
    assert.equal(answer.status, 200, answer.text);
    const context = callsOf(answer.headers['x-request-id'] as string).preAuthCheck?.context;
    assert.deepEqual([context?.source, context?.clientAddress, context?.userAgent], ['forward-auth', '198.51.100.20', 'Browser/5']);
  });

  it('a spoofed X-Forwarded-For from an untrusted peer does not dodge the login throttle', async () => {
    const wrong = await postFrom('127.0.0.4', url, '/v1/auth/check', { id: 'alice', secret: 'guess' }, { 'x-forwarded-for': '192.0.2.1' });
    assert.equal(wrong.status, 401);
    // Another id, another claimed address, the same peer: its address is still delayed, so even the right secret is refused, and no hook runs.
    const dodge = await postFrom('127.0.0.4', url, '/v1/auth/check', { id: 'bob', secret: BOB_SECRET }, { 'x-forwarded-for': '192.0.2.2' });
    assert.equal(dodge.status, 401, 'a new claimed address is no new address');
    assert.deepEqual(callsOf(dodge.headers['x-request-id'] as string), {});
    assert.equal(
      (await postFrom('127.0.0.5', url, '/v1/auth/check', { id: 'bob', secret: BOB_SECRET })).status,
      200,
      "bob's secret is right",
    );
  });

  it('the CLI names itself in context.client; the source stays what the server established', async () => {
    const env = { KEYHOLD_SERVER: url, KEYHOLD_TOKEN: root, XDG_CONFIG_HOME: scratchDir('hook-context-cli') };
    expectCode(await runCli(['entity', 'lock', 'bob'], env), 0, 'lock bob');
    const lock = records()
      .filter((r) => r.hook === 'postEntityLock')
      .at(-1)!;
    const context = lock.context!;
    assert.deepEqual(
      [context.source, context.client, context.userAgent, context.clientAddress],
      ['api', `cli/${VERSION}`, `keyhold-cli/${VERSION}`, '127.0.0.1'],
    );
    assert.deepEqual([context.before?.meta.locked, lock.subject?.meta.locked], [false, true]);
    const event = await committed('committedEntityLock', context.requestId);
    assert.deepEqual([event.before?.meta.locked, event.after?.meta.locked], [false, true]);
    assert.deepEqual([event.source, event.client, event.userAgent], ['api', `cli/${VERSION}`, `keyhold-cli/${VERSION}`]);
    const shown = expectCode(await runCli(['events', 'show', String(event.seq)], env), 0, 'events show').stdout;
    for (const field of [/^source: +api$/m, /^client address: +127\.0\.0\.1$/m, /^user agent: +keyhold-cli\//m, /^client: +cli\//m])
      assert.match(shown, field);
    // Any client can say it is the CLI (informative only); a malformed declaration is left out.
    for (const [header, client] of [
      ['cli/9.9.9', 'cli/9.9.9'],
      ['cli/1.0; rm -rf', undefined],
    ] as const) {
      const response = await fetch(`${url}/v1/entities/bob/unlock`, {
        method: 'POST',
        headers: { authorization: `Bearer ${root}`, 'keyhold-client': header },
      });
      const unlock = callsOf(response.headers.get('x-request-id')!).preEntityUnlock?.context;
      assert.deepEqual([unlock?.source, unlock?.client], ['api', client]);
      await call(url, 'POST', '/v1/entities/bob/lock', { token: root });
    }
  });

  it('updates of every kind give POST hooks `before`; a secret change too, and no secret or hash is in anything a plugin got', async () => {
    const set = await fetch(`${url}/v1/entities/alice/secret`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${root}`, 'content-type': 'application/json' },
      body: JSON.stringify({ secret: NEW_SECRET }),
    });
    assert.equal(set.status, 204);
    const requestId = set.headers.get('x-request-id')!;
    const post = callsOf(requestId).postSecretChange!;
    assert.equal(post.context?.before?.id, 'alice');
    await committed('committedSecretChange', requestId);
    assert.equal((await call(url, 'POST', '/v1/groups', { token: root, body: { name: 'staff' } })).status, 201);
    const added = await fetch(`${url}/v1/groups/staff/members/alice`, { method: 'PUT', headers: { authorization: `Bearer ${root}` } });
    assert.equal(added.status, 200);
    const membership = callsOf(added.headers.get('x-request-id')!).postMembershipAdd!;
    assert.deepEqual([membership.context?.before?.meta.groups, membership.subject?.meta.groups], [[], ['staff']]);
    // Create, destroy and AuthCheck change no object that was there before: no `before` for their hooks.
    const all = records();
    for (const r of all.filter((r) => r.context)) {
      const { point, phase } = hookSpec(r.hook as Parameters<typeof hookSpec>[0]);
      const update = [
        'EntityUpdate',
        'EntityLock',
        'EntityUnlock',
        'SecretChange',
        'GroupUpdate',
        'MembershipAdd',
        'MembershipRemove',
      ].includes(point);
      assert.equal(r.context!.before !== undefined, update && phase === 'post', `${r.hook} ${r.context!.operation}`);
    }
    const text = readFileSync(file, 'utf8');
    for (const secret of [ROOT_SECRET, ALICE_SECRET, BOB_SECRET, NEW_SECRET])
      assert.ok(!text.includes(secret), 'a secret reached a plugin');
    assert.doesNotMatch(text, /\$argon2/, 'a hash reached a plugin');
    for (const r of all) assert.equal((r.context?.before ?? r.event?.before ?? r.event?.after ?? r.subject)?.secret ?? '', '', r.hook);
  });

  it('every operation the host sent is one of the typed list, at the point of the hook it went to', () => {
    const all = records();
    assert.ok(all.length > 20);
    for (const r of all) {
      const problem = r.event
        ? isCommittedHookName(r.hook) && operationProblem(r.event.operation, r.event.point)
        : operationProblem(r.context?.operation, hookSpec(r.hook as Parameters<typeof hookSpec>[0]).point);
      assert.equal(problem || undefined, undefined, r.hook);
    }
  });
});
