import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Fail2Lock } from 'keyhold-fail2lock';
import { ConfigError, Veto, type Entity, type JsonObject } from 'keyhold-plugin-sdk';
import { fakeEntity, PluginHarness } from 'keyhold-plugin-sdk/testing';

const alice = fakeEntity({ id: 'alice' });

/** One authentication as the engine runs it: preAuthCheck, the built-in step (locked? right secret?), postAuthCheck on success. */
function authenticate(harness: PluginHarness<Fail2Lock>, secretIsRight: boolean, entity: Entity = alice): Promise<Entity> {
  return harness.run('AuthCheck', entity, {
    change(e) {
      if (!secretIsRight) throw new Error('refused: wrong secret');
      return e;
    },
  });
}

async function failTimes(harness: PluginHarness<Fail2Lock>, n: number, entity: Entity = alice): Promise<void> {
  for (let i = 0; i < n; i++) await assert.rejects(authenticate(harness, false, entity), /wrong secret/);
}

const start = (config: JsonObject = {}) => PluginHarness.start(new Fail2Lock(), { config });

/** fail2lock's refusal: a veto (the server answers it as a wrong secret). */
const refused = (err: unknown) => err instanceof Veto && /failed authentications/.test(err.message);

describe('fail2lock', () => {
  it('refuses the 4th attempt after 3 failures, even with the right secret, and warns naming the entity and counts', async () => {
    const h = await start();
    await failTimes(h, 3);
    await assert.rejects(authenticate(h, true), refused);
    const warning = h.logs.find((r) => r.level === 'warn');
    assert.ok(warning, 'a warning is logged');
    assert.deepEqual(warning.fields, { entity: 'alice', fails: 3, allowed: 3 });
  });

  it('counts per entity', async () => {
    const h = await start();
    await failTimes(h, 3);
    await authenticate(h, true, fakeEntity({ id: 'bob' }));
  });

  it('forgets the failures when an authentication succeeds', async () => {
    const h = await start();
    await failTimes(h, 2);
    await authenticate(h, true);
    await failTimes(h, 2);
    await authenticate(h, true);
    assert.equal(await h.state.get('alice'), undefined, 'no count is left');
  });

  it('lets the entity in again once its failures are older than the interval', async () => {
    const h = await start({ interval: '10m' });
    await failTimes(h, 3);
    h.clock.advance('9m');
    await assert.rejects(authenticate(h, true), refused);
    h.clock.advance('1m');
    await authenticate(h, true);
  });

  it('honours allowedFails from the config', async () => {
    const h = await start({ allowedFails: 1 });
    await failTimes(h, 1);
    await assert.rejects(authenticate(h, true), refused);
  });

  it('keeps its counts in the host state with the window as time to live, and an operator deleting the key unlocks', async () => {
    const h = await start({ interval: '10m' });
    await failTimes(h, 3);
    const entry = await h.state.entry('alice');
    assert.equal(entry?.value, '3');
    assert.equal(entry?.expiresAt, h.clock.now() + 10 * 60_000);
    await assert.rejects(authenticate(h, true), refused);
    assert.equal(await h.state.delete('alice'), true); // what `keyhold plugin state fail2lock delete alice` does
    await authenticate(h, true);
  });

  it('keeps the entity locked for lockoutDuration beyond the interval', async () => {
    const h = await start({ interval: '15m', lockoutDuration: '1h' });
    await failTimes(h, 3);
    h.clock.advance('30m');
    await assert.rejects(authenticate(h, true), refused);
    h.clock.advance('30m');
    await authenticate(h, true);
  });

  it('rejects a bad config with a message naming the setting', async () => {
    const cases: [JsonObject, RegExp][] = [
      [{ allowedFails: 0 }, /config "allowedFails": expected an integer ≥ 1, got 0/],
      [{ allowedFails: 'three' }, /config "allowedFails": expected an integer ≥ 1, got "three"/],
      [{ interval: 'soon' }, /config "interval": expected a duration/],
      [{ allowed_fails: 3 }, /config "allowed_fails": unknown setting; this plugin knows allowedFails, interval, lockoutDuration/],
    ];
    for (const [config, message] of cases) {
      await assert.rejects(start(config), (err: unknown) => err instanceof ConfigError && message.test(err.message));
    }
  });
});
