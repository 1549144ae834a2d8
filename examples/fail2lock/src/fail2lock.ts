#!/usr/bin/env node
// fail2lock: "if there are X failures in Y minutes, refuse authentication" (NetAuth's example plugin).
import { clearUntypedFuzzy, ConfiguredPlugin, isMainModule, readUntyped, serve, setting, type Entity } from 'keyhold-plugin-sdk';

const schema = {
  allowedFails: setting.integer({ min: 1, default: 3 }),
  interval: setting.duration({ min: 1, default: '15m' }),
  /** Once locked, stay locked at least this long even if the failures age out (OpenLDAP's pwdLockoutDuration); 0 = off. */
  lockoutDuration: setting.duration({ default: 0 }),
};

export class Fail2Lock extends ConfiguredPlugin(schema) {
  override readonly name = 'fail2lock';
  override readonly version = '1.0.0';
  /** Entity id → times of its failures within the interval. In memory: a restart forgets them, as NetAuth's did. */
  readonly failures = new Map<string, number[]>();
  /** Entity id → end of its lockoutDuration. */
  readonly lockedUntil = new Map<string, number>();

  override preAuthCheck(entity: Entity): Entity {
    const { allowedFails, interval, lockoutDuration } = this.settings;
    const now = this.now();
    if (readUntyped(entity.meta.untypedMeta, 'fail2lock').includes('RESET')) {
      this.forget(entity.id);
      return { ...entity, meta: { ...entity.meta, untypedMeta: clearUntypedFuzzy(entity.meta.untypedMeta, 'fail2lock') } };
    }
    const fails = (this.failures.get(entity.id) ?? []).filter((t) => t > now - interval);
    if (fails.length >= allowedFails || (this.lockedUntil.get(entity.id) ?? 0) > now) {
      this.logger.warn(
        { entity: entity.id, fails: fails.length, allowed: allowedFails },
        'fail2lock: refusing an entity with too many recent authentication failures',
      );
      return { ...entity, meta: { ...entity.meta, locked: true } };
    }
    // Pessimistic: count this attempt as a failure now; postAuthCheck forgets it if it succeeds.
    fails.push(now);
    this.failures.set(entity.id, fails);
    if (fails.length >= allowedFails && lockoutDuration > 0) this.lockedUntil.set(entity.id, now + lockoutDuration);
    return entity;
  }

  override postAuthCheck(entity: Entity): Entity {
    this.forget(entity.id);
    return entity;
  }

  private forget(id: string): void {
    this.failures.delete(id);
    this.lockedUntil.delete(id);
  }
}

if (isMainModule(import.meta.url)) serve(new Fail2Lock());
