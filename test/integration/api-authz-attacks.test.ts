// Regression tests for the privilege escalations found against the authorization model before
// protected subjects, the last-root rule and managedBy cycles: each attack, as its attacker would
// run it over the API, must now be refused, write nothing, and leave root as it was.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Capability } from 'keyhold-plugin-sdk';
import type { ApiResponse } from '../support/keyhold.js';
import { AuthzServer, ROOT_SECRET } from '../support/authz.js';

let s: AuthzServer;
let n = 0;

/** A fresh attacker holding `capabilities`, a direct member of a fresh plain group; returns its id, token and group. */
async function attacker(...capabilities: Capability[]): Promise<{ id: string; token: string; group: string }> {
  const id = await s.entity(`attacker-${++n}`, capabilities);
  const group = await s.group(`attackers-${n}`);
  await s.member(group, id);
  return { id, token: (await s.login(id))!, group };
}

/** Asserts the response is the refusal `code`, that nothing was written, and that root still logs in with GLOBAL_ROOT. */
async function refused(attempt: () => Promise<ApiResponse>, status: number, code: string): Promise<ApiResponse> {
  const before = s.snapshot();
  const response = await attempt();
  assert.deepEqual({ status: response.status, code: response.body?.code }, { status, code }, response.text);
  assert.deepEqual(s.snapshot(), before, 'a refused request wrote nothing');
  assert.deepEqual(await s.loginCapabilities('root', ROOT_SECRET), ['GLOBAL_ROOT'], 'root is unlocked, keeps its secret and GLOBAL_ROOT');
  return response;
}

async function assertNotRoot(id: string): Promise<void> {
  assert.ok(!(await s.loginCapabilities(id))?.includes('GLOBAL_ROOT'), `${id} logs in without GLOBAL_ROOT`);
}

before(async () => {
  s = await AuthzServer.start();
  await s.group('admins', { capabilities: ['GLOBAL_ROOT'] });
});

after(() => s?.close());

describe('attacks on the authorization model', () => {
  it('MODIFY_GROUP_META cannot make the root group INCLUDE a group it is in', async () => {
    const a = await attacker('MODIFY_GROUP_META');
    const response = await refused(
      () => s.call(a.token, 'POST', '/v1/groups/admins/expansions', { action: 'add', mode: 'INCLUDE', group: a.group }),
      403,
      'KH_ERR_FORBIDDEN',
    );
    assert.deepEqual(response.body.details, { needed: ['GLOBAL_ROOT'], group: 'admins', reason: 'confers' });
    await assertNotRoot(a.id);
  });

  it('MODIFY_GROUP_META cannot make a group it is in manage the root group', async () => {
    const a = await attacker('MODIFY_GROUP_META');
    await refused(() => s.call(a.token, 'PATCH', '/v1/groups/admins', { managedBy: a.group }), 403, 'KH_ERR_FORBIDDEN');
    await refused(() => s.call(a.token, 'PUT', `/v1/groups/admins/members/${a.id}`), 403, 'KH_ERR_FORBIDDEN');
    await assertNotRoot(a.id);
  });

  it('a manager of the root group may not change its membership: managing is bound by what the group confers', async () => {
    const a = await attacker();
    const managed = await s.group('managed-admins', { capabilities: ['GLOBAL_ROOT'], managedBy: a.group });
    await refused(() => s.call(a.token, 'PUT', `/v1/groups/${managed}/members/${a.id}`), 403, 'KH_ERR_FORBIDDEN');
    await assertNotRoot(a.id);
  });

  it('no group may manage itself, directly or through a chain of managedBy', async () => {
    const a = await attacker('MODIFY_GROUP_META');
    const response = await refused(
      () => s.call(a.token, 'PATCH', `/v1/groups/${a.group}`, { managedBy: a.group }),
      409,
      'KH_ERR_MANAGED_BY_CYCLE',
    );
    assert.deepEqual(response.body.details, { path: [a.group, a.group] });
    const other = await s.group('managed-by-attackers', { managedBy: a.group });
    await refused(() => s.call(a.token, 'PATCH', `/v1/groups/${a.group}`, { managedBy: other }), 409, 'KH_ERR_MANAGED_BY_CYCLE');
    await refused(
      () => s.call(s.root, 'POST', '/v1/groups', { name: 'self-managed', managedBy: 'self-managed' }),
      409,
      'KH_ERR_MANAGED_BY_CYCLE',
    );
  });

  it('MODIFY_GROUP_MEMBERS cannot add itself to the root group', async () => {
    const a = await attacker('MODIFY_GROUP_MEMBERS');
    await refused(() => s.call(a.token, 'PUT', `/v1/groups/admins/members/${a.id}`), 403, 'KH_ERR_FORBIDDEN');
    await assertNotRoot(a.id);
  });

  it("MODIFY_GROUP_MEMBERS cannot take root's GLOBAL_ROOT by adding it to a group the root group excludes", async () => {
    const a = await attacker('MODIFY_GROUP_MEMBERS');
    const holder = await s.entity('excluded-admin');
    await s.member('admins', holder);
    const outcasts = await s.group('outcasts');
    await s.asRoot('POST', '/v1/groups/admins/expansions', { action: 'add', mode: 'EXCLUDE', group: outcasts });
    await refused(() => s.call(a.token, 'PUT', `/v1/groups/${outcasts}/members/${holder}`), 403, 'KH_ERR_FORBIDDEN');
    assert.deepEqual(await s.loginCapabilities(holder), ['GLOBAL_ROOT']);
    await s.asRoot('DELETE', `/v1/groups/admins/members/${holder}`);
  });

  it("CHANGE_ENTITY_SECRET cannot reset root's secret", async () => {
    const a = await attacker('CHANGE_ENTITY_SECRET');
    await refused(() => s.call(a.token, 'PUT', '/v1/entities/root/secret', { secret: 'taken-over' }), 403, 'KH_ERR_FORBIDDEN');
    assert.equal(await s.login('root', 'taken-over'), undefined);
  });

  it('LOCK_ENTITY cannot lock root out', async () => {
    const a = await attacker('LOCK_ENTITY');
    await refused(() => s.call(a.token, 'POST', '/v1/entities/root/lock'), 403, 'KH_ERR_FORBIDDEN');
  });

  it('DESTROY_ENTITY cannot destroy the only GLOBAL_ROOT holder, and neither can root itself', async () => {
    const a = await attacker('DESTROY_ENTITY');
    await refused(() => s.call(a.token, 'DELETE', '/v1/entities/root'), 403, 'KH_ERR_FORBIDDEN');
    // Root is the only entity holding GLOBAL_ROOT here.
    const last = await refused(() => s.call(s.root, 'DELETE', '/v1/entities/root'), 409, 'KH_ERR_LAST_ROOT');
    assert.match(last.body.message, /no unlocked entity would hold GLOBAL_ROOT/);
    await refused(() => s.call(s.root, 'POST', '/v1/entities/root/lock'), 409, 'KH_ERR_LAST_ROOT');
    await refused(
      () => s.call(s.root, 'POST', '/v1/entities/root/capabilities', { action: 'remove', value: 'GLOBAL_ROOT' }),
      409,
      'KH_ERR_LAST_ROOT',
    );
  });
});
