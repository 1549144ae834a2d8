// Suite: admin writes while a flood of wrong-secret logins runs. The server hashes with the default
// (OWASP) argon2id parameters and has login throttling off, so every attempt of the flood really
// runs argon2; the flood comes from many loopback addresses (127.0.0.2, …), each client keeping one
// attempt in flight. The figure is the p99 of root's sequential metadata updates during the flood
// beside the same updates idle, same server, same run: once with the argon2 bound at its default
// (hash.concurrency = cores − 1) and once with the bound out of the way (the reference).
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_HASH_SLOTS } from '../../src/identity/hash-slots.js';
import { DEFAULT_HASH_PARAMS } from '../../src/identity/secrets.js';
import { ApiClient } from '../lib/http.js';
import { measureLatency } from '../lib/measure.js';
import { count, type BenchOptions } from '../lib/options.js';
import { pluginSet } from '../lib/plugins.js';
import type { Report } from '../lib/report.js';
import { startServerProcess } from '../lib/server.js';
import { median } from '../lib/stats.js';

const SUITE = 'login-flood';
/**
 * Fewer clients than the default argon2 queue holds, so that every attempt runs argon2 (none is
 * refused busy). With more, the busy refusals come back at once and the clients retry at once:
 * that measures a plain request flood, not argon2.
 */
const FLOOD_CLIENTS = 48;
/** The flood runs this long before the updates are measured, so that the argon2 queue is full. */
const FLOOD_WARMUP_MS = 500;

interface FloodCounts {
  attempts: number;
  /** Answered 503 KH_ERR_BUSY (refused without argon2). */
  busy: number;
  seconds: number;
}

/** Wrong-secret logins from FLOOD_CLIENTS addresses until stopped; each client waits for its answer before the next. */
function startFlood(url: string): { stop(): Promise<FloodCounts> } {
  let running = true;
  const counts = { attempts: 0, busy: 0 };
  const start = process.hrtime.bigint();
  const clients = Array.from({ length: FLOOD_CLIENTS }, (_, i) => new ApiClient(url, `127.0.0.${i + 2}`));
  const lanes = clients.map(async (client, i) => {
    for (let n = 0; running; n++) {
      await client.call('POST', '/v1/auth/check', { id: `flood-${i}-${n % 8}`, secret: 'a-wrong-secret' }).catch((err: Error) => {
        if (/: 503 /.test(err.message)) counts.busy++;
      });
      counts.attempts++;
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(lanes);
      for (const client of clients) client.close();
      return { ...counts, seconds: Number(process.hrtime.bigint() - start) / 1e9 };
    },
  };
}

const BOUNDS = [
  {
    name: `bound ${DEFAULT_HASH_SLOTS.concurrency} (default)`,
    concurrency: DEFAULT_HASH_SLOTS.concurrency,
    queue: DEFAULT_HASH_SLOTS.queue,
  },
  // libuv's thread pool (4 threads) is then the only limit.
  { name: 'no bound (reference)', concurrency: 256, queue: 100_000 },
];

export async function loginFlood(report: Report, options: BenchOptions): Promise<void> {
  const n = count(options, 1500);
  for (const bound of BOUNDS) {
    const set = pluginSet([]);
    try {
      const server = await startServerProcess(set.settings, {
        hash: { ...DEFAULT_HASH_PARAMS, concurrency: bound.concurrency, queue: bound.queue },
        loginThrottle: { enabled: false },
        tokenTtl: '24h',
      });
      try {
        const { api } = server;
        await api.call('POST', '/v1/entities', { id: 'target' });
        let next = 0;
        const update = () => api.call('PATCH', '/v1/entities/target', { displayName: `Target ${next++}` });
        const idle: number[] = [];
        const flooded: number[] = [];
        const checked: number[] = [];
        const busy: number[] = [];
        for (let run = 0; run < options.runs; run++) {
          idle.push((await measureLatency(update, n, 100)).p99);
          const flood = startFlood(api.url);
          await sleep(FLOOD_WARMUP_MS);
          flooded.push((await measureLatency(update, n, 0)).p99);
          const counts = await flood.stop();
          checked.push((counts.attempts - counts.busy) / counts.seconds);
          busy.push((100 * counts.busy) / counts.attempts);
        }
        const idleName = `metadata update p99, idle, ${bound.name}`;
        report.add(SUITE, idleName, median(idle), 'µs');
        report.compare(
          SUITE,
          `metadata update p99, login flood, ${bound.name}`,
          median(flooded),
          'µs',
          idleName,
          bound.concurrency === DEFAULT_HASH_SLOTS.concurrency ? '≤ 3×' : undefined,
        );
        report.add(SUITE, `flood: logins checked by argon2, ${bound.name}`, median(checked), '/s');
        report.add(SUITE, `flood: refused busy (503), ${bound.name}`, median(busy), '%');
      } finally {
        await server.close();
      }
    } finally {
      set.remove();
    }
  }
}
