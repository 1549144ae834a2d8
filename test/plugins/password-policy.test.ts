import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, Veto } from 'keyhold-plugin-sdk';
import { fakeEntity, PluginHarness } from 'keyhold-plugin-sdk/testing';
import { PasswordPolicy } from '../../plugins/src/password-policy.js';

const alice = fakeEntity({ id: 'alice', meta: { displayName: 'Alice Liddell', legalName: 'Alice Pleasance Liddell' } });

async function vetoOf(harness: PluginHarness<PasswordPolicy>, secret: string): Promise<string | undefined> {
  try {
    await harness.call('preSecretChange', alice, { secret });
    return undefined;
  } catch (err) {
    assert.ok(err instanceof Veto, `a Veto, not ${String(err)}`);
    return err.message;
  }
}

describe('password-policy', () => {
  it('accepts a long, mixed secret unrelated to the entity', async () => {
    const h = await PluginHarness.start(new PasswordPolicy());
    assert.equal(await vetoOf(h, 'Glass-Tortoise-41'), undefined);
  });

  it('says everything to fix in one veto', async () => {
    const h = await PluginHarness.start(new PasswordPolicy());
    assert.equal(
      await vetoOf(h, 'short'),
      'the new secret is too weak: use at least 12 characters (this one has 5); mix at least 3 of: lower case, upper case, digits, symbols (this one has 1)',
    );
  });

  it("refuses the entity's own id and names, case-insensitively", async () => {
    const h = await PluginHarness.start(new PasswordPolicy());
    assert.match((await vetoOf(h, 'ALICE-rules-2026'))!, /do not use your id or your name/);
    assert.match((await vetoOf(h, 'Pleasance#2026x'))!, /do not use your id or your name/);
  });

  it('refuses common passwords, also with digits and symbols tacked on', async () => {
    const h = await PluginHarness.start(new PasswordPolicy(), { config: { minLength: 8, minClasses: 1 } });
    assert.match((await vetoOf(h, 'Password123!'))!, /^the new secret is too weak: do not use a common password$/);
    assert.match((await vetoOf(h, 'qwertyuiop'))!, /common password/);
  });

  it('applies the configured length, classes and site words', async () => {
    const h = await PluginHarness.start(new PasswordPolicy(), { config: { minLength: 20, minClasses: 4, forbiddenWords: ['Acme'] } });
    assert.equal(await vetoOf(h, 'acme-Glass-Tortoise-41'), 'the new secret is too weak: do not use "Acme"');
    assert.match((await vetoOf(h, 'Glass-Tortoise-41'))!, /at least 20 characters \(this one has 17\)/);
    assert.match((await vetoOf(h, 'glass-tortoise-forty-one'))!, /mix at least 4 of: .* \(this one has 2\)/);
  });

  it('rejects a bad config naming the setting', async () => {
    await assert.rejects(
      PluginHarness.start(new PasswordPolicy(), { config: { minClasses: 5 } }),
      (e: unknown) => e instanceof ConfigError && /config "minClasses": expected an integer from 0 to 4, got 5/.test(e.message),
    );
  });
});
