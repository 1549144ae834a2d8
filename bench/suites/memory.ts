// Suite 4: resident memory of the server process and of one plugin process, at idle and after
// 100k and 200k hook calls made through the API (growth over the second 100k would be a leak),
// beside a bare Node child.
import { startBareNode } from '../lib/bare-node.js';
import { measureThroughput } from '../lib/measure.js';
import { count, type BenchOptions } from '../lib/options.js';
import { pluginSet } from '../lib/plugins.js';
import type { Report } from '../lib/report.js';
import { rssMiB } from '../lib/rss.js';
import { startServerProcess } from '../lib/server.js';
import { median } from '../lib/stats.js';

const SUITE = 'memory';
const SECRET = 'bench-entity-secret';

export async function memory(report: Report, options: BenchOptions): Promise<void> {
  const bare: number[] = [];
  for (let run = 0; run < options.runs; run++) {
    const child = await startBareNode();
    bare.push(rssMiB(child.pid));
    await child.close();
  }
  report.add(SUITE, 'bare node child, idle', median(bare), 'MiB');

  // One plugin with all 24 hooks: a metadata update and an AuthCheck are 2 hook calls each.
  const set = pluginSet(['all']);
  try {
    const server = await startServerProcess(set.settings);
    try {
      const { api } = server;
      const { plugins } = (await api.call('GET', '/v1/plugins')) as { plugins: { pid: number }[] };
      const pluginPid = plugins[0]!.pid;
      await api.call('POST', '/v1/entities', { id: 'bench', secret: SECRET });
      report.compare(SUITE, 'plugin, idle', rssMiB(pluginPid), 'MiB', 'bare node child, idle', '≤ 1.15×');
      report.add(SUITE, 'server, idle', rssMiB(server.pid), 'MiB');
      const calls = count(options, 100_000);
      let next = 0;
      const operation = () => {
        const i = next++;
        return i % 2 === 0
          ? api.call('PATCH', '/v1/entities/bench', { displayName: `Bench ${i}` })
          : api.call('POST', '/v1/auth/check', { id: 'bench', secret: SECRET });
      };
      // The first batch grows the heaps to their working size; a leak shows as growth over the second.
      await measureThroughput(operation, calls / 2, 8);
      const after = `after ${calls.toLocaleString('en-US')} hook calls`;
      report.compare(SUITE, `plugin, ${after}`, rssMiB(pluginPid), 'MiB', 'plugin, idle');
      report.compare(SUITE, `server, ${after}`, rssMiB(server.pid), 'MiB', 'server, idle');
      await measureThroughput(operation, calls / 2, 8);
      const again = `after ${(2 * calls).toLocaleString('en-US')} hook calls`;
      report.compare(SUITE, `plugin, ${again}`, rssMiB(pluginPid), 'MiB', `plugin, ${after}`, 'no growth');
      report.compare(SUITE, `server, ${again}`, rssMiB(server.pid), 'MiB', `server, ${after}`, 'no growth');
    } finally {
      await server.close();
    }
  } finally {
    set.remove();
  }
}
