// Settings tests ask what loadConfig refused and where: the ConfigError itself, not just that it threw.
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/config.js';

/** The ConfigError `fn` throws; fails the test when it throws nothing or something else. */
export function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  assert.fail('expected a ConfigError');
}
