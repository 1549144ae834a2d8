// The committed-event outbox in a running server: dead letters seen, retried and skipped over the
// API and the CLI (GLOBAL_ROOT only), its metrics, and an event committed just before the server
// was killed with SIGKILL delivered after it comes back.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import YAML from 'yaml';
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
import { eventually, recordedAttempts } from '../support/recorder-log.js';

after(killChildren);

const ROOT_SECRET = 'Root-Secret-for-events-1';

/** A plugin directory with the committed recorder as "recorder", and a settings file giving it `config`. */
function recorderSetup(dir: string, config: Record<string, unknown>, timeout = '30s'): { pluginDir: string; configFile: string } {
  const pluginDir = join(dir, 'plugins');
  mkdirSync(pluginDir, { recursive: true });
  if (!existsSync(join(pluginDir, 'recorder'))) symlinkSync(fixture('committed-recorder'), join(pluginDir, 'recorder'));
  const configFile = join(dir, 'keyhold.yaml');
  writeFileSync(configFile, YAML.stringify({ plugins: { plugins: { recorder: { timeout, config } } } }));
  return { pluginDir, configFile };
}

describe('the outbox in a running server', () => {
  it('dead letters: listed, shown, retried and skipped over the API and the CLI, by GLOBAL_ROOT only; metrics', async (t) => {
    const dir = scratchDir('events-api');
    const file = join(dir, 'recorder.jsonl');
    const failWhile = join(dir, 'failing');
    const { pluginDir, configFile } = recorderSetup(dir, { file, failWhile, hooks: ['committedEntityCreate'] });
    const server = await startTestServer(ROOT_SECRET, {
      KEYHOLD_PLUGIN_DIR: pluginDir,
      KEYHOLD_CONFIG: configFile,
      KEYHOLD_EVENTS_MAX_ATTEMPTS: '2',
      KEYHOLD_EVENTS_RETRY_INITIAL_DELAY: '1ms',
      KEYHOLD_EVENTS_RETRY_MAX_DELAY: '10ms',
    });
    t.after(() => server.close());
    const root = await login(server.url, 'root', ROOT_SECRET);
    const cli = (args: string[]) => runCli(['--json', ...args], { KEYHOLD_SERVER: server.url, KEYHOLD_TOKEN: root });
    assert.equal(
      (await call(server.url, 'POST', '/v1/entities', { token: root, body: { id: 'viewer', secret: 'Viewer-Secret-2026' } })).status,
      201,
    );
    const viewer = await login(server.url, 'viewer', 'Viewer-Secret-2026');
    await eventually('the first change is delivered', () => recordedAttempts(file).some((l) => l.subjectKey === 'viewer'));

    writeFileSync(failWhile, '');
    for (const id of ['doomed', 'dropped'])
      assert.equal((await call(server.url, 'POST', '/v1/entities', { token: root, body: { id } })).status, 201);
    const deadList = async () => (await call(server.url, 'GET', '/v1/events?dead=true', { token: root })).body;
    await eventually('two dead letters', async () => (await deadList()).events.length === 2);
    const dead = await deadList();
    const [doomed, dropped] = dead.events.map((e: { seq: number }) => e.seq) as [number, number];
    assert.deepEqual(
      dead.events[0].deadLetters.map((l: { plugin: string; attempts: number }) => [l.plugin, l.attempts]),
      [['recorder', 2]],
    );
    assert.equal(dead.events[0].after.id, 'doomed');
    assert.equal(dead.events[0].after.secret, '');
    assert.deepEqual(
      dead.subscribers.map((s: { plugin: string; deadLetters: number }) => [s.plugin, s.deadLetters]),
      [['recorder', 2]],
    );

    // Events carry whole entities: reading them needs GLOBAL_ROOT, like acting on them.
    for (const [method, path] of [
      ['GET', '/v1/events'],
      ['GET', `/v1/events/${doomed}`],
      ['POST', `/v1/events/${doomed}/retry`],
      ['POST', `/v1/events/${doomed}/skip`],
    ] as const) {
      const refused = await call(server.url, method, path, { token: viewer, ...(method === 'POST' && { body: {} }) });
      assert.equal(refused.status, 403, `${method} ${path}`);
      assert.equal(refused.body.code, 'KH_ERR_FORBIDDEN');
    }

    const listed = JSON.parse(expectCode(await cli(['events', 'list', '--dead', '--plugin', 'recorder']), 0, 'events list --dead').stdout);
    assert.deepEqual(
      listed.events.map((e: { subjectKey: string }) => e.subjectKey),
      ['doomed', 'dropped'],
    );
    const shown = JSON.parse(expectCode(await cli(['events', 'show', String(doomed)]), 0, 'events show').stdout);
    assert.deepEqual([shown.point, shown.subjectKey, shown.deadLetters[0].plugin], ['EntityCreate', 'doomed', 'recorder']);

    const failed = expectCode(await cli(['events', 'retry', String(doomed)]), 1, 'retry while the plugin still fails');
    assert.equal(JSON.parse(failed.stderr).code, 'KH_ERR_EVENT_DELIVERY_FAILED');
    rmSync(failWhile);
    const retried = JSON.parse(expectCode(await cli(['events', 'retry', String(doomed), '--plugin', 'recorder']), 0, 'retry').stdout);
    assert.equal(retried.retried.attempts, 3);
    assert.deepEqual(
      recordedAttempts(file)
        .filter((l) => l.outcome === 'delivered')
        .map((l) => [l.subjectKey, l.attempt]),
      [
        ['viewer', 1],
        ['doomed', 4],
      ],
    );

    expectCode(await cli(['events', 'skip', String(dropped)]), 0, 'skip');
    const again = await call(server.url, 'POST', `/v1/events/${dropped}/skip`, { token: root }); // no body: the one plugin that has it
    assert.equal(again.body.code, 'KH_ERR_DEAD_LETTER_NOT_FOUND', 'skipped once already');
    assert.equal((await call(server.url, 'GET', '/v1/events/999999', { token: root })).body.code, 'KH_ERR_EVENT_NOT_FOUND');
    assert.deepEqual((await deadList()).events, []);
    expectCode(
      await runCli(['events', 'list', '--after', 'x'], { KEYHOLD_SERVER: server.url, KEYHOLD_TOKEN: root }),
      2,
      'a bad --after is a usage error',
    );

    // Delivery went on past the dead letters: a new change arrives at once, and the metrics show what happened.
    assert.equal((await call(server.url, 'POST', '/v1/entities', { token: root, body: { id: 'fine' } })).status, 201);
    await eventually('the next change is delivered', () =>
      recordedAttempts(file).some((l) => l.subjectKey === 'fine' && l.outcome === 'delivered'),
    );
    const metrics = async () => (await call(server.url, 'GET', '/metrics')).text;
    await eventually('the outbox is empty for the plugin', async () =>
      /keyhold_outbox_depth\{plugin="recorder"\} 0\n/.test(await metrics()),
    );
    const text = await metrics();
    assert.match(text, /keyhold_event_delivery_failures_total\{plugin="recorder"\} 5\n/);
    assert.match(text, /keyhold_event_deliveries_total\{plugin="recorder"\} 3\n/);
    assert.match(text, /keyhold_event_dead_letters\{plugin="recorder"\} 0\n/);
    assert.match(text, /keyhold_event_delivery_lag_seconds\{plugin="recorder"\} 0\n/);
    assert.match(text, /keyhold_event_delivery_latency_seconds_count\{plugin="recorder"\} 3\n/);
  });

  it('an event committed just before the server was killed with SIGKILL is delivered after it comes back', async () => {
    const dir = scratchDir('events-kill');
    const dataDir = join(dir, 'data');
    const file = join(dir, 'recorder.jsonl');
    // First life: the plugin takes the event but never answers, so it is not delivered when the server dies.
    const { pluginDir, configFile } = recorderSetup(dir, { file, block: true, hooks: ['committedEntityCreate'] }, '1s');
    const env = serverEnv(dataDir, { KEYHOLD_PLUGIN_DIR: pluginDir, KEYHOLD_CONFIG: configFile, KEYHOLD_BOOTSTRAP: `root:${ROOT_SECRET}` });
    const first = await startServerProcess(env);
    const root = await login(first.url, 'root', ROOT_SECRET);
    const created = await call(first.url, 'POST', '/v1/entities', { token: root, body: { id: 'survivor' } });
    assert.equal(created.status, 201, created.text);
    // Killed during the second attempt: the first timed out a second ago, time enough for any cursor write to happen.
    await eventually('the plugin holds the event a second time', () =>
      recordedAttempts(file).some((l) => l.subjectKey === 'survivor' && l.outcome === 'blocked' && l.attempt === 2),
    );
    const exited = new Promise((resolve) => first.child.once('exit', resolve));
    first.child.kill('SIGKILL');
    await exited;
    const seq = recordedAttempts(file).find((l) => l.subjectKey === 'survivor')!.seq;
    assert.ok(!recordedAttempts(file).some((l) => l.outcome === 'delivered'));

    // Second life, on the same data: the plugin now takes events.
    recorderSetup(dir, { file, hooks: ['committedEntityCreate'] });
    const second = await startServerProcess(env);
    try {
      await eventually('delivered after the restart', () => recordedAttempts(file).some((l) => l.outcome === 'delivered'));
      assert.deepEqual(
        recordedAttempts(file)
          .filter((l) => l.outcome === 'delivered')
          .map((l) => [l.seq, l.subjectKey]),
        [[seq, 'survivor']],
      );
    } finally {
      await second.stop();
    }
  });
});
