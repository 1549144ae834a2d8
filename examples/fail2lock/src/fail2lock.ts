#!/usr/bin/env node
// fail2lock: "if there are X failures in Y minutes, refuse authentication" (NetAuth's example plugin).
// The counts live in the host's plugin state (docs/plugin-guide.md, "State"), one key per entity id
// with the window as its time to live: they survive restarts of the plugin and of the server, every
// server on the database shares them, and `keyhold plugin state fail2lock delete ID` unlocks.
import { ConfiguredPlugin, isMainModule, serve, setting, Veto, type Entity } from 'keyhold-plugin-sdk';

const schema = {
  allowedFails: setting.integer({ min: 1, default: 3 }),
  interval: setting.duration({ min: 1, default: '15m' }),
  /** Once locked, stay locked at least this long even if the failures age out (OpenLDAP's pwdLockoutDuration); 0 = off. */
  lockoutDuration: setting.duration({ default: 0 }),
};

export class Fail2Lock extends ConfiguredPlugin(schema) {
  override readonly name = 'fail2lock';
  override readonly version = '2.0.0';

  override async preAuthCheck(entity: Entity): Promise<Entity> {
    const { allowedFails, interval, lockoutDuration } = this.settings;
    // Pessimistic: this attempt counts as a failure at once, written before the secret is even
    // checked (a crash cannot lose it); postAuthCheck forgets the count if the secret was right.
    // The window starts at the first failure: the key expires `interval` after it.
    const attempts = await this.state.incr(entity.id, { ttlMs: interval });
    const fails = attempts - 1;
    if (fails >= allowedFails) {
      this.logger.warn(
        { entity: entity.id, fails, allowed: allowedFails },
        'fail2lock: refusing an entity with too many recent authentication failures',
      );
      // The client gets the answer of a wrong secret (401); the server's log and metrics say fail2lock refused.
      throw new Veto(`${fails} failed authentications within ${interval} ms (at most ${allowedFails})`);
    }
    // This attempt, if it fails, reaches the limit: the lock lasts lockoutDuration from now when that is longer than the window.
    if (attempts === allowedFails && lockoutDuration > interval)
      await this.state.set(entity.id, String(attempts), { ttlMs: lockoutDuration });
    return entity;
  }

  override async postAuthCheck(entity: Entity): Promise<Entity> {
    await this.state.delete(entity.id);
    return entity;
  }
}

if (isMainModule(import.meta.url)) serve(new Fail2Lock());
