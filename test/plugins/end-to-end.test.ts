// The plugins inside a real server: startServer on 127.0.0.1 port 0, with fail2lock,
// password-policy, audit-log and the Python plugin deployed in its plugin directory as an
// operator would (symlinks), driven over the HTTP API.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import { startServer, type ServerHandle } from '../../src/server.js';
import { HttpService, reply } from '../support/http-service.js';
import { npm, repoPath, scaffoldLinked } from '../support/plugin-projects.js';
import { capturingLogger } from '../support/keyhold.js';

const ROOT_SECRET = 'Root-Secret-for-tests-2026';
const FAIL2LOCK_INTERVAL_MS = 2000;

interface Reply {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

/** Polls `check` every 100 ms until it returns true, failing after `limitMs`. */
async function eventually(what: string, check: () => Promise<boolean>, limitMs = 10_000): Promise<void> {
  const until = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > until) assert.fail(`${what}: not within ${limitMs} ms`);
    await sleep(100);
  }
}

describe('plugins in a running server', () => {
  let dir: string;
  let pluginDir: string;
  let auditFile: string;
  let server: ServerHandle | undefined;
  let token: string;
  const { logger: serverLogger, records: logs } = capturingLogger('info');
  const service = new HttpService();

  async function api(method: string, path: string, body?: unknown): Promise<Reply> {
    const response = await fetch(`${server!.url}${path}`, {
      method,
      headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...(token && { authorization: `Bearer ${token}` }) },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>), headers: response.headers };
  }

  const authCheck = (id: string, secret: string) => api('POST', '/v1/auth/check', { id, secret });
  const auditLines = async () =>
    (await readFile(auditFile, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  async function createEntity(id: string, secret: string): Promise<void> {
    const created = await api('POST', '/v1/entities', { id, secret });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'keyhold-e2e-plugins-'));
    pluginDir = join(dir, 'plugins');
    auditFile = join(dir, 'audit.jsonl');
    await mkdir(pluginDir);
    const deployed: [string, string][] = [
      ['fail2lock', 'examples/fail2lock/dist/fail2lock.js'],
      ['password-policy', 'dist/plugins/src/password-policy.js'],
      ['audit-log', 'dist/plugins/src/audit-log.js'],
      ['python-deny', 'examples/python-deny/python-deny'],
      ['webhook', 'dist/plugins/src/webhook.js'],
    ];
    for (const [name, file] of deployed) await symlink(repoPath(file), join(pluginDir, name));
    const config = {
      listen: { host: '127.0.0.1', port: 0 },
      dataDir: join(dir, 'data'),
      // fail2lock's refusals are the subject here: the built-in throttle counts, but delays nothing.
      loginThrottle: { baseDelay: 0 },
      plugins: {
        directory: pluginDir,
        plugins: {
          fail2lock: { config: { allowedFails: 3, interval: FAIL2LOCK_INTERVAL_MS } },
          'audit-log': { order: 1000, config: { file: auditFile } },
          'python-deny': { config: { deny: ['admin'] } },
          // The first fetch of the plugin process loads the HTTP client: on a busy machine that alone can take a good part of a second.
          webhook: {
            timeout: '5s',
            config: {
              url: await service.listen(),
              hooks: ['preGroupCreate'],
              timeout: '800ms',
              retries: 2,
              retryBaseInterval: '10ms',
              custom: { tenant: 'e2e' },
            },
          },
        },
      },
    };
    await writeFile(join(dir, 'keyhold.yaml'), YAML.stringify(config));
    server = await startServer({
      cwd: dir,
      env: { KEYHOLD_BOOTSTRAP: `root:${ROOT_SECRET}` },
      logger: serverLogger,
      print: () => undefined,
    });
    const login = await api('POST', '/v1/auth/token', { id: 'root', secret: ROOT_SECRET });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    token = login.body.token as string;
  });

  after(async () => {
    await server?.close();
    await service.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('fail2lock: 3 wrong secrets lock out the 4th attempt, the operator and the interval let it in, a success clears the count', async () => {
    await createEntity('alice', 'Glass-Harbor-Secret-1');
    for (let i = 0; i < 3; i++) assert.equal((await authCheck('alice', 'wrong')).status, 401);
    const refused = await authCheck('alice', 'Glass-Harbor-Secret-1');
    const unknown = await authCheck('nobody-at-all', 'Glass-Harbor-Secret-1');
    assert.deepEqual(refused, unknown, 'a locked id answers exactly as an unknown one: the lock does not tell that alice exists');
    assert.equal(refused.body.code, 'KH_ERR_AUTH_FAILED');
    assert.ok(
      logs.some(
        (r) =>
          r.entity === 'alice' &&
          r.reason === 'plugin_veto' &&
          (r.detail as { plugin?: string }).plugin === 'fail2lock' &&
          typeof r.reqId === 'string',
      ),
      'the log has the real reason: fail2lock refused',
    );
    assert.ok(
      logs.some((r) => r.plugin === 'fail2lock' && r.entity === 'alice' && r.fails === 3 && r.allowed === 3),
      'the warning names the entity and the counts',
    );

    // The operator's reset: the count is a key of fail2lock's state (`keyhold plugin state fail2lock delete alice`).
    assert.equal((await api('DELETE', '/v1/plugins/fail2lock/state/alice')).status, 204);
    assert.equal((await authCheck('alice', 'Glass-Harbor-Secret-1')).status, 200);

    for (let i = 0; i < 3; i++) assert.equal((await authCheck('alice', 'wrong')).status, 401);
    assert.equal((await authCheck('alice', 'Glass-Harbor-Secret-1')).status, 401);
    // The window runs from the first failure: refused attempts do not extend it, so polling with the right secret gets in.
    await eventually(
      'accepted once the failures are older than the interval',
      async () => (await authCheck('alice', 'Glass-Harbor-Secret-1')).status === 200,
    );

    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 2; i++) assert.equal((await authCheck('alice', 'wrong')).status, 401);
      assert.equal((await authCheck('alice', 'Glass-Harbor-Secret-1')).status, 200, 'a success clears the count');
    }
  });

  it('password-policy: a weak secret is vetoed with what to fix, and nothing is written', async () => {
    await createEntity('bob', 'Copper-Kettle-Secret-1');
    const vetoed = await api('PUT', '/v1/entities/bob/secret', { secret: 'bob2026' });
    assert.equal(vetoed.status, 422);
    assert.equal(vetoed.body.code, 'KH_ERR_PLUGIN_VETO');
    assert.match(
      vetoed.body.message as string,
      /plugin "password-policy" refused the request in preSecretChange: the new secret is too weak: use at least 12 characters/,
    );
    assert.equal((await authCheck('bob', 'bob2026')).status, 401);
    assert.equal((await authCheck('bob', 'Copper-Kettle-Secret-1')).status, 200);
    assert.equal((await api('PUT', '/v1/entities/bob/secret', { secret: 'Glass-Tortoise-41' })).status, 204);
    assert.equal((await authCheck('bob', 'Glass-Tortoise-41')).status, 200);
  });

  it('audit-log: one line per committed change, after the commit; none for a vetoed request; never a secret', async () => {
    await createEntity('carol', 'Violet-Lantern-Secret-1');
    // Lines come from committed events, after the commit: wait for the create's two (EntityCreate, SecretChange).
    await eventually('the create is in the audit log', async () =>
      (await auditLines()).some((l) => l.entity === 'carol' && l.hook === 'committedSecretChange'),
    );
    const before = (await auditLines()).length;

    const updated = await api('PATCH', '/v1/entities/carol', { displayName: 'Carol Ann' });
    assert.equal(updated.status, 200, JSON.stringify(updated.body));
    const requestId = updated.headers.get('x-request-id');
    await eventually('the update is in the audit log', async () => (await auditLines()).length > before);
    const line = (await auditLines()).at(-1)!;
    assert.deepEqual(
      {
        hook: line.hook,
        entity: line.entity,
        caller: line.caller,
        operation: line.operation,
        requestId: line.requestId,
        seq: typeof line.seq,
      },
      { hook: 'committedEntityUpdate', entity: 'carol', caller: 'root', operation: 'entity.update-meta', requestId, seq: 'number' },
    );

    assert.equal((await api('PUT', '/v1/entities/carol/secret', { secret: 'weak' })).status, 422, 'vetoed by password-policy');
    assert.equal((await api('POST', '/v1/entities', { id: 'admin' })).status, 422, 'vetoed by python-deny');
    assert.equal((await api('PUT', '/v1/entities/carol/secret', { secret: 'Amber-Walrus-Secret-9' })).status, 204);
    // Events are delivered in commit order: once the accepted change's line is there, a line of a vetoed one would be too.
    await eventually(
      'the accepted secret change is in the audit log',
      async () => (await auditLines()).at(-1)!.hook === 'committedSecretChange',
    );
    assert.equal((await auditLines()).length, before + 2, 'the vetoed requests left no line');
    assert.doesNotMatch(await readFile(auditFile, 'utf8'), /Violet-Lantern-Secret-1|Amber-Walrus-Secret-9|Glass-Harbor-Secret-1|"secret"/);
  });

  it("python-deny: the Python plugin's veto reaches the client and its $/log record the server log", async () => {
    const vetoed = await api('POST', '/v1/entities', { id: 'admin' });
    assert.equal(vetoed.body.code, 'KH_ERR_PLUGIN_VETO');
    assert.match(vetoed.body.message as string, /plugin "python-deny" refused the request in preEntityCreate: the id "admin" is reserved/);
    assert.ok(logs.some((r) => r.plugin === 'python-deny' && r.msg === 'refusing to create a denied id' && r.entity === 'admin'));
  });

  it('webhook: allow, veto, modify, 5xx, timeout and retry, through the server', async () => {
    const createGroup = (name: string) => api('POST', '/v1/groups', { name });

    service.handler = (_body, res) => reply(res, 204);
    const allowed = await createGroup('allowed');
    assert.equal(allowed.status, 201, JSON.stringify(allowed.body));
    assert.deepEqual(service.received.at(-1)!.config, { tenant: 'e2e' });

    service.handler = (_body, res) => reply(res, 403, { message: 'group names need a ticket number' });
    const vetoed = await createGroup('vetoed');
    assert.equal(vetoed.body.code, 'KH_ERR_PLUGIN_VETO');
    assert.match(vetoed.body.message as string, /plugin "webhook" refused the request in preGroupCreate: group names need a ticket number/);
    assert.equal((await api('GET', '/v1/groups/vetoed')).status, 404);

    service.handler = (body, res) => reply(res, 200, { subject: { ...(body.subject as object), displayName: 'Named by the service' } });
    const modified = await createGroup('modified');
    assert.equal(modified.status, 201);
    assert.equal(modified.body.displayName, 'Named by the service');

    service.handler = (_body, res) => reply(res, 500, { message: 'database down' });
    const failed = await createGroup('failed');
    assert.equal(failed.body.code, 'KH_ERR_PLUGIN_FAILED');
    assert.match(failed.body.message as string, /answered 500: database down/);

    service.handler = (_body, res) => void setTimeout(() => reply(res, 204), 5000).unref();
    const slow = await createGroup('slow');
    assert.equal(slow.body.code, 'KH_ERR_PLUGIN_FAILED');
    assert.match(slow.body.message as string, /did not answer within 800 ms/);

    let calls = 0;
    service.handler = (_body, res) => (++calls < 3 ? reply(res, 503, { message: 'starting' }) : reply(res, 204));
    assert.equal((await createGroup('retried')).status, 201);
    assert.equal(calls, 3);
  });

  it('a scaffolded plugin, built and dropped into the plugin directory, loads into the running server', async () => {
    const project = await scaffoldLinked(dir, 'shell-default');
    const build = npm(project, 'run', 'build');
    assert.equal(build.status, 0, `${build.stdout}\n${build.stderr}`);
    await symlink(join(project, 'dist/shell-default.js'), join(pluginDir, 'shell-default'));
    const reload = await api('POST', '/v1/plugins/reload');
    assert.equal(reload.status, 200, JSON.stringify(reload.body));

    const created = await api('POST', '/v1/entities', { id: 'dave' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal((created.body.meta as { shell: string }).shell, '/bin/sh');
  });
});
