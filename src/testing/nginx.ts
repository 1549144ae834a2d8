// A real nginx (Debian's `nginx` package) for the forward-auth tests and benchmarks: started in
// the foreground on a free loopback port with its own configuration, pid, logs and temp paths in
// a temporary directory, found ready by connecting to it, and stopped (SIGTERM, which ends its
// workers too; SIGKILL only if it hangs). `findNginx` says whether there is one to run.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './free-port.js';

export const NGINX_MISSING = 'nginx is not installed: apt-get install nginx';

/** The nginx binary: /usr/sbin/nginx (where Debian puts it, often not on a user's PATH), else one on PATH; undefined when there is none. */
export function findNginx(): string | undefined {
  const candidates = [
    '/usr/sbin/nginx',
    ...(process.env.PATH ?? '')
      .split(delimiter)
      .filter(Boolean)
      .map((dir) => join(dir, 'nginx')),
  ];
  return candidates.find((path) => {
    try {
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

export interface Nginx {
  /** http://127.0.0.1:<port> */
  url: string;
  /** Its temporary directory (configuration, logs; a place for htpasswd files and static files). */
  dir: string;
  /** What nginx wrote to its error log so far. */
  errorLog(): string;
  /** Stops nginx and removes its directory; safe to call twice. */
  stop(): Promise<void>;
}

export interface NginxOptions {
  /** The directives inside `http { }`: upstreams and the `server` blocks; `listen` with `port` is the caller's. */
  http(port: number, dir: string): string;
  /** Files to write into the directory first (relative path → content). */
  files?: Record<string, string>;
  /** worker_processes; default 1. */
  workers?: number;
  timeoutMs?: number;
}

function configuration(dir: string, port: number, options: NginxOptions): string {
  const temp = (name: string) => `${name}_temp_path ${join(dir, 'temp', name)};`;
  return [
    // As root, workers would switch to `nobody`, who cannot read this private directory.
    ...(process.getuid?.() === 0 ? ['user root;'] : []),
    `worker_processes ${options.workers ?? 1};`,
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${join(dir, 'error.log')} warn;`,
    'events { worker_connections 1024; }',
    'http {',
    '  access_log off;',
    // Everything nginx writes stays in the directory (the package's defaults are under /var).
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((name) => `  ${temp(name)}`),
    options.http(port, dir),
    '}',
    '',
  ].join('\n');
}

/** Starts nginx with `options`; rejects with its error log when it does not come up within the timeout. */
export async function startNginx(binary: string, options: NginxOptions): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), 'keyhold-nginx-'));
  mkdirSync(join(dir, 'temp'));
  for (const [name, content] of Object.entries(options.files ?? {})) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), content);
  }
  const errorLog = () => {
    try {
      return readFileSync(join(dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  };
  // A port found free can be taken before nginx binds it: a few tries.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    writeFileSync(join(dir, 'nginx.conf'), configuration(dir, port, options));
    const child = spawn(binary, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const kill = killer(child, once(child, 'exit'));
    const until = Date.now() + (options.timeoutMs ?? 10_000);
    let up = false;
    while (!up && child.exitCode === null && Date.now() < until) {
      up = await canConnect(port);
      if (!up) await sleep(20);
    }
    if (up)
      return {
        url: `http://127.0.0.1:${port}`,
        dir,
        errorLog,
        stop: async () => (await kill(), rmSync(dir, { recursive: true, force: true })),
      };
    const why = `${stderr}${errorLog()}`;
    await kill();
    if (attempt < 3 && /Address already in use/.test(why)) continue;
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`nginx did not start: ${why || 'no error output'}`);
  }
}

/** Ends nginx once: SIGTERM (the master ends its workers), SIGKILL if it has not exited after 5 s. */
function killer(child: ChildProcess, exited: Promise<unknown>): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  return () =>
    (stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    })());
}
