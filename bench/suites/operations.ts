// Suite 2: what an operation costs through the HTTP API, without and with plugins, beside the
// same server with no plugins (same run); and the password hash on its own.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { HookName } from 'keyhold-plugin-sdk';
import { DEFAULT_HASH_PARAMS, hashSecret, verifySecret, type HashParams } from '../../src/identity/secrets.js';
import { measureLatency, measureThroughput } from '../lib/measure.js';
import { count, type BenchOptions } from '../lib/options.js';
import { pluginSet, type PluginSet } from '../lib/plugins.js';
import type { Report } from '../lib/report.js';
import { LOW_HASH, startServerProcess } from '../lib/server.js';
import { median } from '../lib/stats.js';

const SUITE = 'operations';
const IN_FLIGHT = 8;
/** Logins round-robin over this many entities, so that no entity has two in flight (fail2lock counts an attempt until it succeeds). */
const ENTITIES = 16;
const SECRET = 'bench-entity-secret';

const FAIL2LOCK = fileURLToPath(new URL('../../../examples/fail2lock/dist/fail2lock.js', import.meta.url));

/** Two hooks each for five plugins, none at EntityUpdate. */
const TWO_HOOKS_EACH: HookName[][] = (['EntityCreate', 'AuthCheck', 'GroupCreate', 'MembershipAdd', 'SecretChange'] as const).map(
  (point) => [`pre${point}`, `post${point}`],
);

interface Configuration {
  name: string;
  plugins(): PluginSet;
}

function configurations(): Configuration[] {
  const list: Configuration[] = [{ name: 'no plugins', plugins: () => pluginSet([]) }];
  if (existsSync(FAIL2LOCK)) {
    list.push({
      name: 'fail2lock',
      plugins: () => {
        const set = pluginSet([], { 'fail2lock.js': FAIL2LOCK });
        return { ...set, settings: { ...set.settings, plugins: { fail2lock: { config: { allowedFails: 100 } } } } };
      },
    });
  }
  list.push({ name: '5 plugins × 2 hooks', plugins: () => pluginSet(TWO_HOOKS_EACH) });
  list.push({ name: '5 plugins × 24 hooks', plugins: () => pluginSet(['all', 'all', 'all', 'all', 'all']) });
  return list;
}

async function hashCost(report: Report, options: BenchOptions, label: string, params: HashParams): Promise<void> {
  const hash = await hashSecret(SECRET, params);
  const n = count(options, params === LOW_HASH ? 2000 : 100);
  report.add(SUITE, `argon2 hash, ${label}`, (await measureLatency(() => hashSecret(SECRET, params), n, 5)).p50, 'µs');
  report.add(SUITE, `argon2 verify, ${label}`, (await measureLatency(() => verifySecret(hash, SECRET), n, 5)).p50, 'µs');
}

export async function operations(report: Report, options: BenchOptions): Promise<void> {
  const low = `m=${LOW_HASH.memoryCost} KiB t=${LOW_HASH.timeCost} (bench)`;
  const def = `m=${DEFAULT_HASH_PARAMS.memoryCost} KiB t=${DEFAULT_HASH_PARAMS.timeCost} (default)`;
  await hashCost(report, options, low, LOW_HASH);
  await hashCost(report, options, def, DEFAULT_HASH_PARAMS);

  const n = count(options, 3_000);
  for (const config of configurations()) {
    const set = config.plugins();
    try {
      const server = await startServerProcess(set.settings);
      try {
        const { api } = server;
        const ids = Array.from({ length: ENTITIES }, (_, i) => `bench${i}`);
        for (const id of ids) await api.call('POST', '/v1/entities', { id, secret: SECRET });
        let next = 0;
        const update = () => {
          const i = next++;
          return api.call('PATCH', `/v1/entities/${ids[i % ENTITIES]}`, { displayName: `Bench User ${i}` });
        };
        const authCheck = () => api.call('POST', '/v1/auth/check', { id: ids[next++ % ENTITIES], secret: SECRET });
        const updates: number[] = [];
        const checks: number[] = [];
        for (let run = 0; run < options.runs; run++) {
          updates.push(await measureThroughput(update, n, IN_FLIGHT));
          checks.push(await measureThroughput(authCheck, n, IN_FLIGHT));
        }
        const unit = `ops/s`;
        const updateName = `metadata update, ${config.name}`;
        const checkName = `AuthCheck, ${config.name}`;
        if (config.name === 'no plugins') {
          report.add(SUITE, updateName, median(updates), unit);
          report.add(SUITE, checkName, median(checks), unit);
        } else {
          report.compare(
            SUITE,
            updateName,
            median(updates),
            unit,
            'metadata update, no plugins',
            config.name === '5 plugins × 2 hooks' ? '≥ 0.91× (cost ≤ 1.1×)' : undefined,
          );
          report.compare(SUITE, checkName, median(checks), unit, 'AuthCheck, no plugins');
        }
      } finally {
        await server.close();
      }
    } finally {
      set.remove();
    }
  }
}
