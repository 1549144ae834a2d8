// Suite 6: what the per-request revocation check costs. In-process, on the same token: the
// signature and claims check alone (TokenService.verify) beside the whole check an authenticated
// request makes (Access.verifyToken: verify + revocation), with the cache warm and just after a
// commit (a miss: entity, generation and effective capabilities read again); and, for scale, an
// authenticated read through the HTTP API (GET /v1/auth/whoami on a server process).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Access } from '../../src/api/access.js';
import { TokenRevocation } from '../../src/api/revocation.js';
import { TokenService } from '../../src/api/tokens.js';
import { Identity } from '../../src/identity/identity.js';
import { NO_PLUGINS } from '../../src/lifecycle/dispatcher.js';
import { LifecycleEngine, serverRequest } from '../../src/lifecycle/engine.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { measureLatency, measureThroughput, type LatencyFigures } from '../lib/measure.js';
import { count, type BenchOptions } from '../lib/options.js';
import { realisticEntity } from '../lib/payload.js';
import type { Report } from '../lib/report.js';
import { LOW_HASH, startServerProcess } from '../lib/server.js';
import { median, microsSince, percentile } from '../lib/stats.js';

const SUITE = 'tokens';
const IN_FLIGHT = 8;
const INFO = serverRequest('bench');
const TTL_MS = 600_000;

/** The realistic entity (5 groups, one of them giving a capability, plus its own) and a token of it. */
async function tokenOfRealisticEntity(identity: Identity, store: SqliteStore, tokens: TokenService): Promise<string> {
  const entity = realisticEntity();
  for (const group of entity.meta.groups)
    await identity.createGroup(INFO, { name: group, ...(group === 'ops' && { capabilities: ['LOCK_ENTITY'] }) });
  await identity.createEntity(INFO, {
    id: entity.id,
    meta: { displayName: entity.meta.displayName },
    capabilities: entity.meta.capabilities,
  });
  for (const group of entity.meta.groups) await identity.addMember(INFO, group, entity.id);
  await identity.createEntity(INFO, { id: 'someone-else' });
  const generation = (await store.reader.tokenGeneration(entity.id))!;
  return (await tokens.issue(entity.id, await identity.effectiveCapabilities(entity.id), generation)).token;
}

/** p50 of `call` when each call follows a commit (about another entity), so the check's cache always misses; the commit is not timed. */
async function latencyAfterCommit(store: SqliteStore, call: () => Promise<unknown>, n: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    await store.write((tx) => tx.renewTokenGeneration('someone-else'));
    const start = process.hrtime.bigint();
    await call();
    samples.push(microsSince(start));
  }
  return percentile(samples, 50);
}

async function inProcess(report: Report, options: BenchOptions): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'keyhold-bench-tokens-'));
  const store = SqliteStore.open(join(dir, 'keyhold.sqlite'));
  try {
    const identity = new Identity(store, new LifecycleEngine(store, NO_PLUGINS), { hash: LOW_HASH });
    const tokens = await TokenService.open(store, TTL_MS, dir, pino({ level: 'silent' }));
    const access = new Access(tokens, identity, new TokenRevocation(store, (id) => identity.effectiveCapabilities(id)));
    const token = await tokenOfRealisticEntity(identity, store, tokens);
    const verify = () => tokens.verify(token);
    const checked = () => access.verifyToken(token);
    const alone: LatencyFigures[] = [];
    const warm: LatencyFigures[] = [];
    const miss: number[] = [];
    // Interleaved runs, so that a busy moment of the machine hits all three alike.
    for (let run = 0; run < options.runs; run++) {
      alone.push(await measureLatency(verify, count(options, 20_000)));
      warm.push(await measureLatency(checked, count(options, 20_000)));
      miss.push(await latencyAfterCommit(store, checked, count(options, 2_000)));
    }
    const verifyP50 = median(alone.map((f) => f.p50));
    const warmP50 = median(warm.map((f) => f.p50));
    report.add(SUITE, 'TokenService.verify p50 (signature + claims)', verifyP50, 'µs');
    report.compare(SUITE, 'verify + revocation check p50, cache warm', warmP50, 'µs', 'TokenService.verify p50 (signature + claims)');
    report.compare(
      SUITE,
      'verify + revocation check p50, after a commit (miss)',
      median(miss),
      'µs',
      'TokenService.verify p50 (signature + claims)',
    );
    report.add(SUITE, 'revocation check alone p50, cache warm (difference)', warmP50 - verifyP50, 'µs');
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function overHttp(report: Report, options: BenchOptions): Promise<void> {
  const server = await startServerProcess({});
  try {
    const whoami = () => server.api.call('GET', '/v1/auth/whoami');
    const latency: number[] = [];
    const throughput: number[] = [];
    for (let run = 0; run < options.runs; run++) {
      latency.push((await measureLatency(whoami, count(options, 5_000))).p50);
      throughput.push(await measureThroughput(whoami, count(options, 20_000), IN_FLIGHT));
    }
    report.add(SUITE, 'GET /v1/auth/whoami p50 (HTTP, server process)', median(latency), 'µs');
    report.add(SUITE, `GET /v1/auth/whoami/s (${IN_FLIGHT} in flight)`, median(throughput), 'requests/s');
  } finally {
    await server.close();
  }
}

export async function tokens(report: Report, options: BenchOptions): Promise<void> {
  await inProcess(report, options);
  await overHttp(report, options);
}
