// The hook contract is one piece of code (the SDK's contract.ts): one plugin that breaks each rule
// is run through the SDK's test harness and as a child of the real host, and both refuse each
// breach with the same message. A plugin that passes its own harness tests passes the server's checks.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ContractViolation } from 'keyhold-plugin-sdk';
import { fakeEntity, fakeGroup, PluginHarness } from 'keyhold-plugin-sdk/testing';
import { isKeyholdError, type ErrorCode } from '../../src/errors.js';
import { startPluginChild, type PluginChild } from '../../src/testing/plugin-child.js';
import { ContractBreaker } from '../fixtures/plugins/contract-breaker.js';
import { fixture } from '../fixtures/plugin-host.js';

/** The message a rejection carries (the test fails when the promise resolves). */
async function refusal(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  return assert.fail('expected the call to be refused');
}

describe('the hook contract: the SDK harness and the server refuse alike', () => {
  let child: PluginChild;
  before(async () => {
    child = await startPluginChild(fixture('contract-breaker'));
  });
  after(() => child.stop());

  const alice = fakeEntity({ id: 'alice', number: 1001, meta: { groups: ['staff'] } });
  const breaches: [string, RegExp, ErrorCode][] = [
    ['id', /it changed id, which plugins may not change$/, 'KH_ERR_PLUGIN_INVALID_RESULT'],
    ['number', /it changed number, which plugins may not change$/, 'KH_ERR_PLUGIN_INVALID_RESULT'],
    ['secret', /it changed secret, which plugins may not change$/, 'KH_ERR_PLUGIN_INVALID_RESULT'],
    ['groups', /it changed meta\.groups, which plugins may not change$/, 'KH_ERR_PLUGIN_INVALID_RESULT'],
    ['schema', /subject\.meta\.shell: expected a string, got number 7$/, 'KH_ERR_PLUGIN_INVALID_RESULT'],
    ['unknown-field', /subject\.admin: unknown field/, 'KH_ERR_PLUGIN_INVALID_RESULT'],
    ['state', /the result has no state object$/, 'KH_ERR_PLUGIN_INVALID_RESULT'],
    [
      'no-return',
      /preEntityUpdate returned undefined: return the object it was given, changed or not \(or unchanged\)$/,
      'KH_ERR_PLUGIN_FAILED',
    ],
  ];
  for (const [breach, reason, code] of breaches) {
    it(`breach "${breach}": the same message from both`, async () => {
      const harness = await PluginHarness.start(new ContractBreaker());
      const inProcess = await refusal(harness.call('preEntityUpdate', alice, { breach }));
      const server = await refusal(child.call('preEntityUpdate', alice, { breach }));
      assert.ok(inProcess instanceof ContractViolation, `the harness threw ${String(inProcess)}`);
      assert.ok(isKeyholdError(server) && server.code === code, `the host threw ${String(server)}`);
      assert.equal(inProcess.message, server.message);
      assert.match(server.message, /^plugin "contract-breaker" failed in preEntityUpdate: /);
      assert.match(server.message, reason);
    });
  }

  it("a group's name: the same message from both", async () => {
    const harness = await PluginHarness.start(new ContractBreaker());
    const inProcess = await refusal(harness.call('preGroupUpdate', fakeGroup({ name: 'staff' })));
    const server = await refusal(child.call('preGroupUpdate', fakeGroup({ name: 'staff' })));
    assert.equal(inProcess.message, server.message);
    assert.match(server.message, /^plugin "contract-breaker" failed in preGroupUpdate: it changed name, which plugins may not change$/);
  });

  it("a call after the request's deadline: the same message from both", async () => {
    const harness = await PluginHarness.start(new ContractBreaker());
    const inProcess = await refusal(harness.call('preEntityUpdate', alice, {}, { deadline: harness.clock.now() - 1 }));
    const server = await refusal(child.call('preEntityUpdate', alice, {}, { deadline: Date.now() - 1 }));
    assert.ok(isKeyholdError(server) && server.code === 'KH_ERR_PLUGIN_TIMEOUT');
    assert.equal(inProcess.message, server.message);
    assert.match(server.message, /the request's deadline passed before this call$/);
  });

  it('a lawful change: the same object from both', async () => {
    const harness = await PluginHarness.start(new ContractBreaker());
    const inProcess = await harness.call('preEntityUpdate', alice);
    const server = await child.call('preEntityUpdate', alice);
    assert.equal(server.subject.meta.shell, '/bin/sh');
    assert.deepEqual(inProcess, server);
  });

  it('names the plugin as the server does: its file name, when the harness is told it', async () => {
    const harness = await PluginHarness.start(new ContractBreaker(), { name: 'policy' });
    assert.match(
      (await refusal(harness.call('preEntityUpdate', alice, { breach: 'id' }))).message,
      /^plugin "policy" failed in preEntityUpdate: /,
    );
  });
});
