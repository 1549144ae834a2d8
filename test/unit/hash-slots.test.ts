// The bound on concurrent argon2 work, with fake tasks: at most `concurrency` run, at most
// `queue` wait, and the next one is refused at once with 503 KH_ERR_BUSY and a Retry-After.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { fastify } from 'fastify';
import { Registry } from 'prom-client';
import { installErrorHandling } from '../../src/api/error-mapping.js';
import { isKeyholdError } from '../../src/errors.js';
import { BUSY_RETRY_AFTER_SECONDS, HashSlots } from '../../src/identity/hash-slots.js';

/** A task that runs until the test finishes it. */
interface HeldTask {
  run: () => Promise<string>;
  started: boolean;
  finish: () => void;
}

function heldTask(): HeldTask {
  const task: HeldTask = {
    started: false,
    finish: () => assert.fail('not started'),
    run: () =>
      new Promise<string>((resolve) => {
        task.started = true;
        task.finish = () => resolve('done');
      }),
  };
  return task;
}

it('runs `concurrency` tasks, queues `queue` more, refuses the next with KH_ERR_BUSY, and hands slots on in order', async () => {
  const registry = new Registry();
  const slots = new HashSlots({ concurrency: 2, queue: 1 }, registry);
  const [a, b, c] = [heldTask(), heldTask(), heldTask()];
  const results = [slots.run('verify', a.run), slots.run('verify', b.run), slots.run('hash', c.run)];
  await Promise.resolve();
  assert.deepEqual([a.started, b.started, c.started], [true, true, false], 'two run, one waits');

  let refused: unknown;
  await slots.run('verify', () => assert.fail('a refused task must not run')).catch((err: unknown) => (refused = err));
  assert.ok(isKeyholdError(refused));
  assert.equal(refused.code, 'KH_ERR_BUSY');
  assert.equal(refused.status, 503);
  assert.deepEqual(refused.details, { retryAfterSeconds: BUSY_RETRY_AFTER_SECONDS });

  a.finish();
  assert.equal(await results[0], 'done');
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(c.started, true, 'the waiting task got the finished one’s slot');
  b.finish();
  c.finish();
  assert.deepEqual(await Promise.all(results), ['done', 'done', 'done']);

  const metrics = await registry.metrics();
  assert.match(metrics, /keyhold_secret_hashing_total\{operation="verify"\} 2/);
  assert.match(metrics, /keyhold_secret_hashing_total\{operation="hash"\} 1/);
  assert.match(metrics, /keyhold_secret_hashing_refused_total 1/);
  assert.match(metrics, /keyhold_secret_hashing_running 0/);
  assert.match(metrics, /keyhold_secret_hashing_waiting 0/);
});

it('reaches the client as 503 KH_ERR_BUSY with a Retry-After header', async () => {
  const app = fastify();
  installErrorHandling(app);
  const slots = new HashSlots({ concurrency: 1, queue: 0 });
  let finish!: () => void;
  const running = slots.run('verify', () => new Promise<void>((resolve) => (finish = resolve)));
  app.post('/login', () => slots.run('verify', () => Promise.resolve('checked')));
  try {
    const answer = await app.inject({ method: 'POST', url: '/login' });
    assert.equal(answer.statusCode, 503);
    assert.equal(answer.headers['retry-after'], String(BUSY_RETRY_AFTER_SECONDS));
    assert.equal(answer.json().code, 'KH_ERR_BUSY');
  } finally {
    finish();
    await running;
    await app.close();
  }
});

it('frees the slot of a task that fails', async () => {
  const slots = new HashSlots({ concurrency: 1, queue: 0 });
  await assert.rejects(
    slots.run('hash', () => Promise.reject(new Error('argon2 failed'))),
    /argon2 failed/,
  );
  assert.equal(await slots.run('hash', () => Promise.resolve('next')), 'next');
});
