import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { implementedHooks, Veto, type JsonObject } from 'keyhold-plugin-sdk';
import { fakeEntity, PluginHarness } from 'keyhold-plugin-sdk/testing';
import { Webhook } from '../../plugins/src/webhook.js';
import { HttpService, reply } from '../support/http-service.js';

describe('webhook', () => {
  const service = new HttpService();
  let url: string;
  before(async () => {
    url = await service.listen();
  });
  after(() => service.close());

  // A generous timeout except where the timeout is the point: a process's first fetch loads the HTTP client, slow on a busy machine.
  const start = (config: JsonObject = {}) =>
    PluginHarness.start(new Webhook(), { config: { url, hooks: ['preEntityCreate'], timeout: '10s', ...config } });
  const alice = fakeEntity({ id: 'alice' });

  it('is called only for the configured hooks', async () => {
    const h = await start({ hooks: ['preEntityCreate', 'postSecretChange'] });
    assert.deepEqual(implementedHooks(h.plugin), ['preEntityCreate', 'postSecretChange']);
  });

  it('allows on an empty 2xx and sends hook, subject, context and the custom config, without the secret', async () => {
    service.handler = (_body, res) => reply(res, 204);
    const h = await start({ hooks: ['preSecretChange'], custom: { tenant: 'blue' } });
    const out = await h.call('preSecretChange', alice, { secret: 'Hunter2-Hunter2' }, { requestId: 'r1' });
    assert.deepEqual(out.subject, alice);
    const sent = service.received.at(-1)!;
    assert.equal(sent.hook, 'preSecretChange');
    assert.deepEqual(sent.request, {});
    assert.deepEqual(sent.config, { tenant: 'blue' });
    assert.equal((sent.context as JsonObject).requestId, 'r1');
    assert.equal((sent.subject as JsonObject).id, 'alice');
  });

  it('sends the secret only when includeSecret is set', async () => {
    service.handler = (_body, res) => reply(res, 200);
    const h = await start({ hooks: ['preSecretChange'], includeSecret: true });
    await h.call('preSecretChange', alice, { secret: 'Hunter2-Hunter2' });
    assert.deepEqual(service.received.at(-1)!.request, { secret: 'Hunter2-Hunter2' });
  });

  it('takes a modified object and state from a 2xx body', async () => {
    service.handler = (body, res) =>
      reply(res, 200, { subject: { ...(body.subject as JsonObject), meta: { shell: '/bin/zsh' } }, state: { checkedBy: 'svc' } });
    const h = await start();
    const out = await h.call('preEntityCreate', alice);
    assert.equal(out.subject.meta.shell, '/bin/zsh');
    assert.deepEqual(out.state, { checkedBy: 'svc' });
  });

  it("vetoes on a 4xx with the body's message", async () => {
    service.handler = (_body, res) => reply(res, 403, { message: 'ids starting with a are closed this week' });
    const h = await start();
    await assert.rejects(
      h.call('preEntityCreate', alice),
      (e: unknown) => e instanceof Veto && e.message === 'ids starting with a are closed this week',
    );
  });

  it('fails (not a veto) on a 5xx', async () => {
    service.handler = (_body, res) => reply(res, 500, { message: 'database down' });
    const h = await start();
    await assert.rejects(
      h.call('preEntityCreate', alice),
      (e: unknown) => !(e instanceof Veto) && /answered 500: database down/.test((e as Error).message),
    );
  });

  it('fails on a timeout, without retrying', async () => {
    let calls = 0;
    let arrived!: () => void;
    const reached = new Promise<void>((resolve) => (arrived = resolve));
    service.handler = (_body, res) => {
      calls++;
      arrived();
      setTimeout(() => reply(res, 200), 3000).unref();
    };
    // Long enough for the request to reach the service on a busy machine: one that arrived after this test would be counted by the next one's handler.
    const h = await start({ timeout: '400ms', retries: 3, retryBaseInterval: '1ms' });
    await assert.rejects(
      h.call('preEntityCreate', alice),
      (e: unknown) => !(e instanceof Veto) && /did not answer within 400 ms/.test((e as Error).message),
    );
    await Promise.race([reached, sleep(10_000)]);
    assert.equal(calls, 1);
    assert.deepEqual(
      h.logs.filter((r) => r.level === 'warn'),
      [],
      'a timeout is not retried',
    );
  });

  it('stops its HTTP call when the host cancels the hook, and sends no signal on the wire', async () => {
    const cancel = new AbortController();
    service.handler = () => cancel.abort(new Error('host timed out')); // never answers; the host gives up meanwhile
    const h = await start();
    await assert.rejects(
      h.call('preEntityCreate', alice, {}, { signal: cancel.signal }),
      (e: unknown) => !(e instanceof Veto) && /could not be called: .*host timed out/.test((e as Error).message),
    );
    assert.deepEqual(Object.keys(service.received.at(-1)!.context as JsonObject).sort(), [
      'caller',
      'deadline',
      'operation',
      'requestId',
      'source',
      'state',
    ]);
  });

  it('retries an unavailable service with backoff, then succeeds', async () => {
    let calls = 0;
    service.handler = (_body, res) => (++calls < 3 ? reply(res, 503, { message: 'warming up' }) : reply(res, 200));
    const h = await start({ retries: 2, retryBaseInterval: '5ms' });
    await h.call('preEntityCreate', alice);
    assert.equal(calls, 3);
    assert.deepEqual(
      h.logs.filter((r) => r.level === 'warn').map((r) => r.fields?.wait),
      [5, 10],
    );
  });

  it('gives up after its retries when nothing listens', async () => {
    const closed = new HttpService();
    const deadUrl = await closed.listen();
    await closed.close();
    const h = await PluginHarness.start(new Webhook(), {
      config: { url: deadUrl, hooks: ['preEntityCreate'], retries: 2, retryBaseInterval: '1ms' },
    });
    await assert.rejects(h.call('preEntityCreate', alice), /is unavailable \(ECONNREFUSED\)/);
    assert.equal(h.logs.filter((r) => r.level === 'warn').length, 2);
  });

  it('rejects an unknown hook name in its config', async () => {
    await assert.rejects(start({ hooks: ['preEntityCreat'] }), /config "hooks": expected a list of names from preEntityCreate/);
  });

  describe('operations filter', () => {
    it('posts only the chosen operations; the others pass unchanged without a call', async () => {
      service.handler = (body, res) => reply(res, 200, { subject: { ...(body.subject as JsonObject), meta: { shell: '/bin/zsh' } } });
      const h = await start({ hooks: ['preEntityUpdate', 'preEntityLock'], operations: ['entity.kv', 'entity.lock'] });
      const before = service.received.length;
      const skipped = await h.call('preEntityUpdate', alice, {}, { operation: 'entity.update-meta' });
      assert.deepEqual(skipped.subject, alice);
      assert.equal(service.received.length, before);
      await h.call('preEntityUpdate', alice, {}, { operation: 'entity.kv' });
      await h.call('preEntityLock', alice, {}, { operation: 'entity.lock' });
      assert.deepEqual(
        service.received.slice(before).map((b) => (b.context as JsonObject).operation),
        ['entity.kv', 'entity.lock'],
      );
    });

    it('delivers only the chosen operations in mode notify', async () => {
      service.handler = (_body, res) => reply(res, 204);
      const h = await start({ mode: 'notify', hooks: ['committedEntityUpdate'], operations: ['entity.keys'] });
      const before = service.received.length;
      await h.deliver('committedEntityUpdate', { after: alice, operation: 'entity.kv' });
      await h.deliver('committedEntityUpdate', { after: alice, operation: 'entity.keys' });
      assert.deepEqual(
        service.received.slice(before).map((b) => (b.event as JsonObject).operation),
        ['entity.keys'],
      );
    });

    it('refuses an unknown operation with the closest name, and one no configured hook would see', async () => {
      await assert.rejects(
        start({ hooks: ['preEntityLock'], operations: ['entity.lok'] }),
        /config "operations": "entity.lok" is no operation \(did you mean "entity.lock"\?\); the operations are entity.create, /,
      );
      await assert.rejects(
        start({ hooks: ['preEntityLock'], operations: ['group.create'] }),
        /config "operations": group.create runs at GroupCreate, and hooks has no hook there: add one \(e.g. preGroupCreate\) or drop group.create/,
      );
    });
  });

  it('refuses a url that is not http or https', async () => {
    await assert.rejects(
      start({ url: 'ftp://example.org/hook' }),
      /config "url": expected an http:\/\/ or https:\/\/ URL, got "ftp:\/\/example.org\/hook"/,
    );
    await assert.rejects(start({ url: 'not a url' }), /config "url": expected an http/);
  });

  describe('mode notify', () => {
    const notify = (config: JsonObject = {}) =>
      start({ mode: 'notify', hooks: ['committedEntityCreate', 'committedGroupDestroy'], ...config });

    it('implements the committed hooks it is given and posts each event with its hook, attempt and the custom config', async () => {
      service.handler = (_body, res) => reply(res, 204);
      const h = await notify({ custom: { tenant: 'blue' } });
      assert.deepEqual(implementedHooks(h.plugin), ['committedEntityCreate', 'committedGroupDestroy']);
      const event = await h.deliver('committedEntityCreate', { after: alice, requestId: 'r1' }, { attempt: 2 });
      const sent = service.received.at(-1)!;
      assert.deepEqual(sent, JSON.parse(JSON.stringify({ hook: 'committedEntityCreate', event, attempt: 2, config: { tenant: 'blue' } })));
    });

    it('fails the delivery (for the outbox to retry) on any non-2xx, a 4xx included, without retrying itself', async () => {
      let calls = 0;
      service.handler = (_body, res) =>
        ++calls === 1 ? reply(res, 409, { message: 'seen already?' }) : reply(res, 503, { message: 'warming up' });
      const h = await notify();
      await assert.rejects(
        h.deliver('committedEntityCreate', { after: alice }),
        (e: unknown) => !(e instanceof Veto) && /refused the event: seen already\?/.test((e as Error).message),
      );
      await assert.rejects(h.deliver('committedEntityCreate', { after: alice }), /answered 503: warming up/);
      assert.equal(calls, 2);
    });

    it('refuses hooks of the other mode, and retries or includeSecret in notify mode', async () => {
      await assert.rejects(
        notify({ hooks: ['postEntityCreate'] }),
        /config "hooks": mode notify takes committed hooks \(committedEntityCreate, …\), not postEntityCreate/,
      );
      await assert.rejects(
        start({ hooks: ['committedEntityCreate'] }),
        /config "hooks": committedEntityCreate is a committed hook: set mode: notify/,
      );
      await assert.rejects(notify({ retries: 2 }), /config "retries": mode notify is retried by the server/);
      await assert.rejects(notify({ includeSecret: true }), /config "includeSecret": committed events never carry a secret/);
    });
  });
});
