import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { implementedHooks, negotiateProtocol, NullPlugin, type Entity } from 'keyhold-plugin-sdk';
import { parsePluginSettings, pluginEntry } from '../../src/host/settings.js';

describe('plugin settings', () => {
  it('gives every default for an absent section', () => {
    const s = parsePluginSettings(undefined);
    assert.deepEqual(s, {
      directory: 'plugins',
      directoryConfigured: false,
      list: undefined,
      startTimeoutMs: 10_000,
      callTimeoutMs: 2000,
      shutdownGraceMs: 2000,
      pingIntervalMs: 10_000,
      restart: { initialDelayMs: 100, maxDelayMs: 30_000, maxCrashes: 5, windowMs: 180_000, resetAfterMs: 60_000 },
      plugins: {},
      allowUntrustedFiles: false,
    });
    assert.equal(
      parsePluginSettings({ directory: 'plugins' }).directoryConfigured,
      true,
      'a directory written out must exist, even the default one',
    );
    assert.deepEqual(pluginEntry(s, 'any'), {
      enabled: true,
      order: 100,
      failureMode: 'closed',
      mode: 'enforce',
      exempt: undefined,
      allowLockout: false,
      verifyMode: undefined,
      verifyFallback: 'none',
      timeoutMs: 2000,
      sha256: undefined,
      config: {},
    });
  });

  it('reads per-plugin entries; a plugin timeout defaults to callTimeout', () => {
    const s = parsePluginSettings({
      callTimeout: '750ms',
      plugins: {
        a: {
          order: -3,
          failureMode: 'open',
          mode: 'shadow',
          exempt: ['root', 'ops'],
          allowLockout: true,
          sha256: 'AB'.repeat(32),
          config: { x: 1 },
        },
        b: { timeout: 50, exempt: [] },
      },
    });
    assert.deepEqual(pluginEntry(s, 'a'), {
      enabled: true,
      order: -3,
      failureMode: 'open',
      mode: 'shadow',
      exempt: ['root', 'ops'],
      allowLockout: true,
      verifyMode: undefined,
      verifyFallback: 'none',
      timeoutMs: 750,
      sha256: 'ab'.repeat(32),
      config: { x: 1 },
    });
    assert.equal(pluginEntry(s, 'b').timeoutMs, 50);
    // An empty list is an explicit "nobody", not the default.
    assert.deepEqual(pluginEntry(s, 'b').exempt, []);
  });

  it('names the key path and the problem', () => {
    assert.throws(
      () => parsePluginSettings({ restart: { maxCrashes: 'five' } }),
      /^Error: plugins\.restart\.maxCrashes: expected an integer ≥ 1, got "five"$/,
    );
    assert.throws(() => parsePluginSettings({ callTimeout: 'soon' }), /^Error: plugins\.callTimeout: "soon" is not a duration/);
    assert.throws(
      () => parsePluginSettings({ pingIntervall: '1s' }),
      /^Error: plugins\.pingIntervall: unknown key \(did you mean "pingInterval"\?\); expected one of directory, list/,
    );
    assert.throws(
      () => parsePluginSettings({ plugins: { a: { failureMode: 'maybe' } } }),
      /^Error: plugins\.plugins\.a\.failureMode: expected "closed" or "open", got "maybe"$/,
    );
    assert.throws(
      () => parsePluginSettings({ plugins: { a: { sha256: 'abc' } } }),
      /^Error: plugins\.plugins\.a\.sha256: expected 64 hex digits/,
    );
    assert.throws(
      () => parsePluginSettings({ plugins: { a: { config: [] } } }),
      /^Error: plugins\.plugins\.a\.config: expected a mapping, got \[\]$/,
    );
    assert.throws(() => parsePluginSettings({ list: ['a', 3] }), /^Error: plugins\.list: expected a list of plugin file paths$/);
    assert.throws(
      () => parsePluginSettings({ allowUntrustedFiles: 'yes' }),
      /^Error: plugins\.allowUntrustedFiles: expected true or false, got "yes"$/,
    );
    assert.throws(
      () => parsePluginSettings({ plugins: { a: { mode: 'dry-run' } } }),
      /^Error: plugins\.plugins\.a\.mode: expected "enforce" or "shadow", got "dry-run"$/,
    );
    assert.throws(
      () => parsePluginSettings({ plugins: { a: { exempt: 'root' } } }),
      /^Error: plugins\.plugins\.a\.exempt: expected a list of entity ids \(e\.g\. \[root\]\), got "root"$/,
    );
    assert.throws(
      () => parsePluginSettings({ plugins: { a: { exempt: ['root', ''] } } }),
      /^Error: plugins\.plugins\.a\.exempt: expected a list of entity ids/,
    );
    assert.throws(
      () => parsePluginSettings({ plugins: { a: { allowLockout: 'yes' } } }),
      /^Error: plugins\.plugins\.a\.allowLockout: expected true or false, got "yes"$/,
    );
    assert.throws(
      () => parsePluginSettings({ plugins: { a: { verifyMode: 'instead' } } }),
      /^Error: plugins\.plugins\.a\.verifyMode: expected "replace" or "also", got "instead"$/,
    );
    assert.throws(
      () => parsePluginSettings({ plugins: { a: { verifyFallback: 'open' } } }),
      /^Error: plugins\.plugins\.a\.verifyFallback: expected "none" or "builtin", got "open"$/,
    );
  });
});

describe('SDK core', () => {
  it('reports exactly the hooks a subclass overrides', () => {
    class Two extends NullPlugin {
      override preAuthCheck(subject: Entity): Entity {
        return subject;
      }
      override postGroupCreate = NullPlugin.prototype.postGroupCreate;
    }
    class Three extends Two {
      override postMembershipRemove(subject: Entity): Entity {
        return subject;
      }
    }
    assert.deepEqual(implementedHooks(new NullPlugin()), []);
    assert.deepEqual(implementedHooks(new Two()), ['preAuthCheck']);
    assert.deepEqual(implementedHooks(new Three()), ['preAuthCheck', 'postMembershipRemove']);
  });

  it('negotiates the highest common protocol version, or names both sides', () => {
    assert.equal(negotiateProtocol([1, 2, 3], [2, 3, 4]), 3);
    assert.throws(() => negotiateProtocol([1], [2]), /no protocol version in common: the host speaks 1, the plugin speaks 2/);
  });
});
