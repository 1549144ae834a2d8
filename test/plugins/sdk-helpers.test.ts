// The SDK's authoring helpers themselves: typed config and the in-process harness.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, ConfiguredPlugin, NullPlugin, readConfig, setting, type Entity, type Group } from 'keyhold-plugin-sdk';
import { fakeEntity, fakeGroup, PluginHarness } from 'keyhold-plugin-sdk/testing';

describe('readConfig', () => {
  const schema = {
    count: setting.integer({ min: 1, max: 9, default: 3 }),
    window: setting.duration({ default: '15m' }),
    mode: setting.string({ oneOf: ['fast', 'safe'], default: 'safe' }),
    url: setting.string({ nonEmpty: true }),
    tags: setting.stringList({ default: [] }),
    strict: setting.boolean({ default: false }),
    extra: setting.object({ default: {} }),
  };

  it('fills defaults and types the values', () => {
    assert.deepEqual(readConfig(schema, { url: 'http://x', window: '2s' }), {
      count: 3,
      window: 2000,
      mode: 'safe',
      url: 'http://x',
      tags: [],
      strict: false,
      extra: {},
    });
  });

  it('names the key and what it expects', () => {
    const fails = (raw: Record<string, unknown>, message: RegExp) =>
      assert.throws(
        () => readConfig(schema, { url: 'u', ...raw } as never),
        (e: unknown) => e instanceof ConfigError && message.test(e.message),
      );
    assert.throws(() => readConfig(schema, {}), /config "url": is required: set it to a non-empty string/);
    fails({ count: 10 }, /config "count": expected an integer from 1 to 9, got 10/);
    fails({ mode: 'slow' }, /config "mode": expected one of "fast", "safe", got "slow"/);
    fails({ window: '15 minutes' }, /config "window": expected a duration/);
    fails({ tags: ['a', 1] }, /config "tags": expected a list of strings/);
    fails({ strict: 'yes' }, /config "strict": expected true or false/);
    fails({ extra: [] }, /config "extra": expected an object/);
    fails({ cuont: 1 }, /config "cuont": unknown setting; this plugin knows count, window, mode, url, tags, strict, extra/);
  });
});

class Stamper extends ConfiguredPlugin({ stamp: setting.string({ default: 'seen' }) }) {
  override preGroupCreate(group: Group): Group {
    return { ...group, untypedMeta: [...group.untypedMeta, `stamp:${this.settings.stamp}@${this.now()}`] };
  }

  override preEntityLock(entity: Entity): Entity {
    return { ...entity, id: `${entity.id}-renamed`, meta: { ...entity.meta, shell: 7 as unknown as string } };
  }
}

describe('PluginHarness', () => {
  it('configures the plugin, and hooks see the clock the test moves', async () => {
    const h = await PluginHarness.start(new Stamper(), { config: { stamp: 'x' }, startTime: 1000 });
    h.clock.advance('1s');
    assert.deepEqual((await h.call('preGroupCreate', fakeGroup())).subject.untypedMeta, ['stamp:x@2000']);
  });

  it('refuses a result that does not fit the schema, naming the field', async () => {
    const h = await PluginHarness.start(new Stamper());
    await assert.rejects(h.call('preEntityLock', fakeEntity()), /subject\.meta\.shell: expected a string, got number 7/);
  });

  it('calls only the hooks the plugin implements, as the host does', async () => {
    const h = await PluginHarness.start(new Stamper());
    await assert.rejects(h.call('postGroupCreate', fakeGroup()), /does not implement postGroupCreate/);
    const group = await h.run('GroupCreate', fakeGroup({ name: 'ops' }));
    assert.equal(group.untypedMeta.length, 1);
    await assert.rejects(
      PluginHarness.start(new NullPlugin()).then((n) => n.call('preEntityCreate', fakeEntity())),
      /does not implement preEntityCreate/,
    );
  });
});
