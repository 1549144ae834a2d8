// Suite 8: forward authentication through a real nginx, beside nginx's own auth_basic in the
// same run. One nginx (one worker) serves the same small static file four ways: without
// authentication (the floor), with auth_basic against an htpasswd file (apr1, htpasswd's default
// format, made by `openssl passwd -apr1`), and with auth_request to keyhold forward-auth, cache on
// and cache off (two keyhold servers with the default argon2 parameters, so "off" costs what a
// real check costs). The same users in each, their requests spread over all of them; a keep-alive
// load generator with a fixed number in flight gives requests/s and the latency of each request.
// Skipped, saying why, without nginx or openssl.
import { execFileSync } from 'node:child_process';
import { Agent, request } from 'node:http';
import { DEFAULT_HASH_PARAMS } from '../../src/identity/secrets.js';
import { findNginx, NGINX_MISSING, startNginx, type Nginx } from '../../src/testing/nginx.js';
import { count, type BenchOptions } from '../lib/options.js';
import type { Report } from '../lib/report.js';
import { startServerProcess, type ServerProcess } from '../lib/server.js';
import { median, microsSince, percentile } from '../lib/stats.js';

const SUITE = 'forward auth';
const IN_FLIGHT = 8;
const USERS = Array.from({ length: 20 }, (_, i) => ({ id: `web-user-${i + 1}`, secret: `Web-User-Secret-${i + 1}-of-20` }));
const BASIC_HEADERS = USERS.map((u) => `Basic ${Buffer.from(`${u.id}:${u.secret}`).toString('base64')}`);

interface LoadFigures {
  perSecond: number;
  p50: number;
  p99: number;
}

/** `total` GETs of `url` with `inFlight` outstanding over keep-alive connections, user by user in turn; all must answer 200. */
async function load(url: string, total: number, inFlight: number, authorize: boolean): Promise<LoadFigures> {
  const agent = new Agent({ keepAlive: true, maxSockets: inFlight });
  const samples: number[] = new Array(total);
  const one = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const start = process.hrtime.bigint();
      const headers = authorize ? { authorization: BASIC_HEADERS[i % BASIC_HEADERS.length]! } : {};
      request(url, { agent, headers }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`${url}: ${res.statusCode}`));
          samples[i] = microsSince(start);
          resolve();
        });
      })
        .on('error', reject)
        .end();
    });
  let next = 0;
  const started = process.hrtime.bigint();
  const lane = async () => {
    while (next < total) await one(next++);
  };
  try {
    await Promise.all(Array.from({ length: inFlight }, lane));
  } finally {
    agent.destroy();
  }
  return { perSecond: total / (microsSince(started) / 1e6), p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

/** htpasswd lines for USERS in apr1 (`openssl passwd -apr1`, the secret on stdin). */
function htpasswd(): string {
  return USERS.map(
    (u) => `${u.id}:${execFileSync('openssl', ['passwd', '-apr1', '-stdin'], { input: `${u.secret}\n`, encoding: 'utf8' }).trim()}\n`,
  ).join('');
}

function nginxHttp(cachedPort: number, uncachedPort: number) {
  return (port: number, dir: string) => {
    const subRequest = (name: string) => `
    location = /_${name} {
      internal;
      proxy_pass http://${name}/v1/forward-auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }`;
    const page = (prefix: string, auth: string) => `
    location ${prefix} {
      ${auth}
      alias ${dir}/www/;
    }`;
    return `
  upstream cached { server 127.0.0.1:${cachedPort}; keepalive 32; }
  upstream uncached { server 127.0.0.1:${uncachedPort}; keepalive 32; }
  server {
    listen 127.0.0.1:${port};
    ${subRequest('cached')}
    ${subRequest('uncached')}
    ${page('/open/', '')}
    ${page('/basic/', `auth_basic "bench"; auth_basic_user_file ${dir}/htpasswd;`)}
    ${page('/cached/', 'auth_request /_cached;')}
    ${page('/uncached/', 'auth_request /_uncached;')}
  }`;
  };
}

async function keyholdWithUsers(cacheTtl: string | number): Promise<ServerProcess> {
  const server = await startServerProcess(
    {},
    { hash: DEFAULT_HASH_PARAMS, api: { trustedProxies: ['127.0.0.1'] }, forwardAuth: { cache: { ttl: cacheTtl } } },
  );
  try {
    for (const user of USERS) await server.api.call('POST', '/v1/entities', user);
  } catch (err) {
    await server.close();
    throw err;
  }
  return server;
}

export async function forwardAuth(report: Report, options: BenchOptions): Promise<void> {
  const binary = findNginx();
  if (!binary) return console.error(`  skipped: ${NGINX_MISSING}`);
  let passwords: string;
  try {
    passwords = htpasswd();
  } catch (err) {
    return console.error(`  skipped: cannot make the htpasswd file with openssl (${(err as Error).message.split('\n')[0]})`);
  }
  const servers: ServerProcess[] = [];
  let nginx: Nginx | undefined;
  try {
    servers.push(await keyholdWithUsers('30s'), await keyholdWithUsers(0));
    const [cachedPort, uncachedPort] = servers.map((s) => Number(new URL(s.api.url).port)) as [number, number];
    nginx = await startNginx(binary, {
      http: nginxHttp(cachedPort, uncachedPort),
      files: { htpasswd: passwords, 'www/page.html': '<!doctype html><title>page</title><p>hello</p>\n' },
    });
    const fast = count(options, 20_000);
    // Every request of the uncached variant is an argon2 check at the default parameters.
    const slow = count(options, 400);
    const variants: [string, string, number, boolean][] = [
      ['no authentication (nginx alone)', '/open/page.html', fast, false],
      ['auth_basic (htpasswd, apr1)', '/basic/page.html', fast, true],
      ['forward-auth, cache on', '/cached/page.html', fast, true],
      ['forward-auth, cache off', '/uncached/page.html', slow, true],
    ];
    // Warm-up: connections, JIT, and the cache of the cached variant.
    for (const [, path, , authorize] of variants)
      await load(nginx.url + path, Math.min(USERS.length * 4, count(options, 500)), IN_FLIGHT, authorize);
    const results = new Map<string, LoadFigures[]>(variants.map(([name]) => [name, []]));
    // Interleaved runs, so that a busy moment of the machine hits all alike.
    for (let run = 0; run < options.runs; run++) {
      for (const [name, path, total, authorize] of variants)
        results.get(name)!.push(await load(nginx.url + path, total, IN_FLIGHT, authorize));
    }
    const figure = (name: string, pick: (f: LoadFigures) => number) => median(results.get(name)!.map(pick));
    const label = (name: string, what: string) => `${name}, ${IN_FLIGHT} in flight: ${what}`;
    const reference = 'auth_basic (htpasswd, apr1)';
    report.add(
      SUITE,
      label(reference, 'requests/s'),
      figure(reference, (f) => f.perSecond),
      'requests/s',
    );
    report.add(
      SUITE,
      label(reference, 'p50'),
      figure(reference, (f) => f.p50),
      'µs',
    );
    report.add(
      SUITE,
      label(reference, 'p99'),
      figure(reference, (f) => f.p99),
      'µs',
    );
    for (const [name] of variants.filter(([n]) => n !== reference)) {
      const cached = name === 'forward-auth, cache on';
      report.compare(
        SUITE,
        label(name, 'requests/s'),
        figure(name, (f) => f.perSecond),
        'requests/s',
        label(reference, 'requests/s'),
      );
      report.compare(
        SUITE,
        label(name, 'p50'),
        figure(name, (f) => f.p50),
        'µs',
        label(reference, 'p50'),
        cached ? '≤ 2×' : undefined,
      );
      report.compare(
        SUITE,
        label(name, 'p99'),
        figure(name, (f) => f.p99),
        'µs',
        label(reference, 'p99'),
        cached ? '≤ 3×' : undefined,
      );
    }
  } finally {
    await nginx?.stop();
    for (const server of servers) await server.close();
  }
}
