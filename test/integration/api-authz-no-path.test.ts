// No path to GLOBAL_ROOT: from each capability set short of it (each single capability, and all
// eleven together), an attacker tries every operation of a fixed list on every subject of a small
// world (root, a root group with a member, a group it includes, one it excludes, the attacker's
// own group, a group including that one, a group the attacker manages, a bystander), in a fixed
// order, twice over, keeping whatever it was allowed to do. After each allowed step: no entity
// whose secret the attacker knows logs in with GLOBAL_ROOT, and root and the root group's member
// still log in with their own secrets and GLOBAL_ROOT. Bounded and deterministic.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CAPABILITIES, type Capability } from 'keyhold-plugin-sdk';
import { AuthzServer, ROOT_SECRET, SECRET } from '../support/authz.js';

interface Step {
  method: string;
  path: string;
  body?: unknown;
  /** The attacker now knows this entity's secret (SECRET) when the step is allowed. */
  learnsSecretOf?: string;
}

let s: AuthzServer;
before(async () => {
  s = await AuthzServer.start();
});
after(() => s?.close());

/** The world of one attacker, every name prefixed with `p`. */
async function world(p: string, capabilities: readonly Capability[]) {
  const w = {
    attacker: `${p}-attacker`,
    admin: `${p}-admin`,
    bystander: `${p}-bystander`,
    admins: `${p}-admins`,
    adminTeam: `${p}-admin-team`,
    outcasts: `${p}-outcasts`,
    crew: `${p}-crew`,
    includer: `${p}-includer`,
    managed: `${p}-managed`,
  };
  await s.entity(w.attacker, capabilities);
  await s.entity(w.admin, [], 'admin-secret');
  await s.entity(w.bystander, [], 'bystander-secret');
  await s.group(w.adminTeam);
  await s.group(w.outcasts);
  await s.group(w.admins, {
    capabilities: ['GLOBAL_ROOT'],
    expansions: [
      { mode: 'INCLUDE', group: w.adminTeam },
      { mode: 'EXCLUDE', group: w.outcasts },
    ],
  });
  await s.member(w.admins, w.admin);
  await s.group(w.crew);
  await s.member(w.crew, w.attacker);
  await s.group(w.includer, { expansions: [{ mode: 'INCLUDE', group: w.crew }] });
  await s.group(w.managed, { managedBy: w.crew });
  return w;
}

type World = Awaited<ReturnType<typeof world>>;

/** Every step the attacker tries, in order; the ones that would end the attacker itself only at the end of the `last` pass. */
function steps(w: World, p: string, last: boolean): Step[] {
  const entities = ['root', w.admin, w.bystander, w.attacker];
  const groups = [w.admins, w.adminTeam, w.outcasts, w.crew, w.includer, w.managed];
  const list: Step[] = [
    { method: 'POST', path: '/v1/groups', body: { name: `${p}-new-root`, capabilities: ['GLOBAL_ROOT'] } },
    {
      method: 'POST',
      path: '/v1/groups',
      body: { name: `${p}-new-managed`, managedBy: w.crew, expansions: [{ mode: 'INCLUDE', group: w.admins }] },
    },
  ];
  for (const g of groups) {
    list.push(
      { method: 'PATCH', path: `/v1/groups/${g}`, body: { managedBy: w.crew } },
      { method: 'PATCH', path: `/v1/groups/${g}`, body: { managedBy: g } },
      { method: 'POST', path: `/v1/groups/${g}/capabilities`, body: { action: 'add', value: 'GLOBAL_ROOT' } },
      { method: 'POST', path: `/v1/groups/${g}/expansions`, body: { action: 'add', mode: 'INCLUDE', group: w.crew } },
      { method: 'POST', path: `/v1/groups/${g}/expansions`, body: { action: 'add', mode: 'INCLUDE', group: w.includer } },
      { method: 'POST', path: `/v1/groups/${g}/expansions`, body: { action: 'add', mode: 'EXCLUDE', group: w.outcasts } },
    );
  }
  list.push(
    { method: 'POST', path: `/v1/groups/${w.admins}/expansions`, body: { action: 'remove', mode: 'EXCLUDE', group: w.outcasts } },
    { method: 'POST', path: `/v1/groups/${w.admins}/expansions`, body: { action: 'remove', mode: 'INCLUDE', group: w.adminTeam } },
    { method: 'POST', path: `/v1/groups/${w.includer}/expansions`, body: { action: 'remove', mode: 'INCLUDE', group: w.crew } },
  );
  for (const e of entities)
    for (const g of groups)
      list.push({ method: 'PUT', path: `/v1/groups/${g}/members/${e}` }, { method: 'DELETE', path: `/v1/groups/${g}/members/${e}` });
  const ending: Step[] = [];
  for (const e of entities) {
    list.push(
      { method: 'PATCH', path: `/v1/entities/${e}`, body: { displayName: 'Taken' } },
      { method: 'POST', path: `/v1/entities/${e}/keys`, body: { action: 'add', value: 'ssh-ed25519 AAAA attacker' } },
      { method: 'POST', path: `/v1/entities/${e}/capabilities`, body: { action: 'add', value: 'GLOBAL_ROOT' } },
      { method: 'PUT', path: `/v1/entities/${e}/secret`, body: { secret: SECRET }, learnsSecretOf: e },
      { method: 'POST', path: `/v1/entities/${e}/unlock` },
    );
    (e === w.attacker ? ending : list).push(
      { method: 'POST', path: `/v1/entities/${e}/lock` },
      { method: 'DELETE', path: `/v1/entities/${e}` },
    );
  }
  for (const g of groups) list.push({ method: 'DELETE', path: `/v1/groups/${g}` });
  return last ? [...list, ...ending] : list;
}

/** How often the whole list is tried, each pass from where the one before left the world: room for chains of two. */
const PASSES = 2;

/** The sets to start from: each capability but GLOBAL_ROOT alone, and all of them together. */
const NON_ROOT = CAPABILITIES.filter((c) => c !== 'GLOBAL_ROOT');
const STARTS: Capability[][] = [...NON_ROOT.map((c) => [c]), NON_ROOT];

describe('no path to GLOBAL_ROOT', () => {
  let i = 0;
  for (const capabilities of STARTS) {
    it(`from ${capabilities.length === 1 ? capabilities[0] : 'every capability but GLOBAL_ROOT'}`, async (t) => {
      const p = `w${++i}`;
      const w = await world(p, capabilities);
      const known = new Set([w.attacker]);
      const check = async (after: string) => {
        for (const id of known)
          assert.ok(
            !(await s.loginCapabilities(id))?.includes('GLOBAL_ROOT'),
            `after ${after}: ${id}, whose secret the attacker knows, logs in with GLOBAL_ROOT`,
          );
        assert.deepEqual(await s.loginCapabilities('root', ROOT_SECRET), ['GLOBAL_ROOT'], `after ${after}: root logs in as before`);
        assert.deepEqual(
          await s.loginCapabilities(w.admin, 'admin-secret'),
          ['GLOBAL_ROOT'],
          `after ${after}: the root group's member logs in as before`,
        );
      };
      let allowed = 0;
      let tried = 0;
      // After each allowed step a fresh token: what the attacker holds now, after everything it did before.
      let token = await s.login(w.attacker);
      for (let pass = 1; pass <= PASSES && token !== undefined; pass++) {
        for (const step of steps(w, p, pass === PASSES)) {
          tried++;
          const response = await s.call(token, step.method, step.path, step.body);
          assert.ok(response.status < 500, `${step.method} ${step.path}: ${response.status} ${response.text}`);
          if (response.status >= 300) continue;
          allowed++;
          if (step.learnsSecretOf) known.add(step.learnsSecretOf);
          await check(`pass ${pass}: ${step.method} ${step.path} ${JSON.stringify(step.body ?? '')}`);
          token = await s.login(w.attacker);
          // The attacker locked or destroyed itself: the end of its search.
          if (token === undefined) break;
        }
      }
      // Every start can do something (metadata, its own keys), so the search ran past the refusals.
      assert.ok(allowed > 0, 'some steps were allowed');
      t.diagnostic(`${allowed} of ${tried} steps allowed`);
      await check('the search');
    });
  }
});
