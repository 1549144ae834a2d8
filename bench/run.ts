// `npm run bench [-- [--quick] [suite]]`: runs the benchmark suites (all by default), prints the
// figures beside their same-run references and writes bench/results/latest.json.
import { benchOptions } from './lib/options.js';
import { Report } from './lib/report.js';
import { committed } from './suites/committed.js';
import { endToEnd } from './suites/end-to-end.js';
import { forwardAuth } from './suites/forward-auth.js';
import { loginFlood } from './suites/login-flood.js';
import { lifecycle } from './suites/lifecycle.js';
import { memory } from './suites/memory.js';
import { operations } from './suites/operations.js';
import { roundTrip } from './suites/round-trip.js';
import { scale } from './suites/scale.js';
import { startAndRecovery } from './suites/start.js';
import { stores } from './suites/stores.js';
import { tokens } from './suites/tokens.js';

const SUITES = {
  'round-trip': roundTrip,
  operations,
  start: startAndRecovery,
  memory,
  scale,
  tokens,
  committed,
  'forward-auth': forwardAuth,
  'login-flood': loginFlood,
  lifecycle,
  'end-to-end': endToEnd,
  stores,
} as const;

type SuiteName = keyof typeof SUITES;

function isSuiteName(name: string): name is SuiteName {
  return Object.hasOwn(SUITES, name);
}

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const chosen = args.filter((a) => a !== '--quick');
const unknown = chosen.filter((name) => !isSuiteName(name));
if (unknown.length > 0) {
  console.error(`unknown suite ${unknown.join(', ')}; the suites are ${Object.keys(SUITES).join(', ')} (and the flag --quick)`);
  process.exit(2);
}

const options = benchOptions(quick);
const report = new Report();
for (const name of chosen.length > 0 ? (chosen as SuiteName[]) : (Object.keys(SUITES) as SuiteName[])) {
  console.error(`${name}${quick ? ' (quick)' : ''}:`);
  await SUITES[name](report, options);
}
report.print();
const results = new URL('../../bench/results/latest.json', import.meta.url);
report.write(results, { quick });
console.error(`written to bench/results/latest.json`);
