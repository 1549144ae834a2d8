// Real keyhold servers and CLI runs for the API and end-to-end tests: servers on 127.0.0.1
// port 0 (in-process, or as a child process found ready by its "listening" log line), fast
// hash parameters, throwaway data and config directories, and every child killed at the end.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { decodeJwt, importPKCS8, SignJWT } from 'jose';
import { Writable } from 'node:stream';
import { pino, type Logger, type LevelWithSilent } from 'pino';
import { TEST_RUN_ENV } from '../../src/host/process.js';
import { DATABASE_FILE, startServer, type ServerHandle } from '../../src/server.js';

export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

let emptyPluginDir: string | undefined;

/**
 * Environment for a test server: loopback, any free port, cheap hashing, no plugins (an empty
 * plugin directory: a missing one is an error), and login throttling counting failures but with
 * no delays (tests log in right after a wrong secret; the throttle's own tests set their delays).
 */
export function serverEnv(dataDir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  emptyPluginDir ??= scratchDir('no-plugins');
  return {
    KEYHOLD_HOST: '127.0.0.1',
    KEYHOLD_PORT: '0',
    KEYHOLD_DATA_DIR: dataDir,
    KEYHOLD_HASH_MEMORY_COST: '256',
    KEYHOLD_HASH_TIME_COST: '1',
    KEYHOLD_PLUGIN_DIR: emptyPluginDir,
    KEYHOLD_LOG_LEVEL: 'warn',
    KEYHOLD_LOGIN_THROTTLE_BASE_DELAY: '0',
    ...extra,
  };
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `keyhold-${prefix}-`));
}

const scratchDirs: string[] = [];
after(() => {
  for (const dir of scratchDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A temporary directory removed once every test of the file has run. */
export function scratchDir(prefix: string): string {
  const dir = tempDir(prefix);
  scratchDirs.push(dir);
  return dir;
}

export interface TestServer {
  url: string;
  dataDir: string;
  close(): Promise<void>;
}

/** An in-process server on a fresh data directory, bootstrapped with root:`rootSecret`. */
export async function startTestServer(rootSecret: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<TestServer> {
  const dataDir = tempDir('api');
  let handle: ServerHandle;
  try {
    handle = await startServer({
      env: serverEnv(dataDir, { KEYHOLD_BOOTSTRAP: `root:${rootSecret}`, ...extraEnv }),
      logger: pino({ level: 'silent' }),
    });
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: handle.url,
    dataDir,
    close: async () => {
      try {
        await handle.close();
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}

const children = new Set<ChildProcess>();

/**
 * The environment of a child process: PATH, this test run's marker (so that the run's check for
 * left-behind processes sees it and what it starts; `env` may unset it) and `env`.
 */
function childEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, [TEST_RUN_ENV]: process.env[TEST_RUN_ENV], ...env };
}

/** Kills every child a test started that is still running. */
export function killChildren(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
}

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  /** Everything the server wrote to stdout (log lines and the bootstrap notice). */
  stdout(): string;
  /** SIGTERM, then waits for the exit code. */
  stop(): Promise<number | null>;
}

/** `keyhold serve` as a child process; resolves once its "listening" log line names the URL. `env` may unset the test run's marker (`[TEST_RUN_ENV]: undefined`). */
export function startServerProcess(env: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<ServerProcess> {
  const child = spawn(process.execPath, [CLI, 'serve'], {
    env: { ...childEnv(env), KEYHOLD_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let output = '';
  let errors = '';
  child.stderr!.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the server did not become ready in ${timeoutMs} ms:\n${output}${errors}`));
    }, timeoutMs);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited with ${code} before it was ready:\n${output}${errors}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      output += `${line}\n`;
      const url = /"msg":"keyhold listening on (https?:\/\/[^"\s]+)/.exec(line)?.[1];
      if (!url) return;
      clearTimeout(timer);
      resolve({
        url,
        child,
        stdout: () => output,
        stop: async () => {
          child.kill('SIGTERM');
          const code = await exited;
          children.delete(child);
          return code;
        },
      });
    });
  });
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Asserts a CLI run's exit code, showing its output when it differs. */
export function expectCode(result: CliResult, code: number, what: string): CliResult {
  assert.equal(result.code, code, `${what}: exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  return result;
}

/** Runs the real `keyhold` CLI with `args`, feeding `stdin`, in the given environment. */
export function runCli(args: string[], env: NodeJS.ProcessEnv, stdin = ''): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { env: childEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin!.end(stdin);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`keyhold ${args.join(' ')} did not finish in time`));
    }, 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface ForgedClaims {
  sub: string;
  caps: string[];
  iat: number;
  exp: number;
  /** The token generation; absent: none (a token the server refuses unless it fails earlier, e.g. expired). */
  gen?: string;
  /** The audience: "keyhold" by default, as the server issues; null: none. */
  aud?: string | null;
}

/** A token signed with the server's own key but carrying whatever claims the test wants (e.g. already expired); otherwise shaped as the server issues them. */
export async function forgeToken(dataDir: string, claims: ForgedClaims): Promise<string> {
  const db = new Database(join(dataDir, DATABASE_FILE), { readonly: true });
  let current: { kid: string; private_key: string };
  try {
    current = db
      .prepare<[], { kid: string; private_key: string }>('SELECT kid, private_key FROM signing_keys WHERE retired_at IS NULL')
      .get()!;
  } finally {
    db.close();
  }
  const key = await importPKCS8(current.private_key, 'EdDSA');
  const jwt = new SignJWT({ caps: claims.caps, ...(claims.gen !== undefined && { gen: claims.gen }) })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid: current.kid })
    .setIssuer('keyhold')
    .setSubject(claims.sub)
    .setJti(randomUUID())
    .setIssuedAt(claims.iat)
    .setExpirationTime(claims.exp);
  const aud = claims.aud === undefined ? 'keyhold' : claims.aud;
  return (aud === null ? jwt : jwt.setAudience(aud)).sign(key);
}

/** What a token says, unverified (e.g. to forge one that differs from a real one in one claim). */
export function tokenClaims(token: string): ForgedClaims {
  return decodeJwt(token) as unknown as ForgedClaims;
}

export interface ApiResponse {
  status: number;
  body: any;
  text: string;
}

/** One HTTP request; `body` is sent as JSON unless it is already a string (raw, for malformed input). */
export async function call(
  url: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(url + path, { method, headers, ...(body !== undefined && { body }) });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: response.status, body: parsed, text };
}

/**
 * One JSON POST sent from the local address `from` (any of 127.0.0.0/8 on Linux), so that a test
 * can play several clients: the server sees `from` as the TCP peer. `headers` are sent too (e.g.
 * X-Forwarded-For, to play a proxy or a client pretending to be one).
 */
export function postFrom(
  from: string,
  url: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<ApiResponse & { headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, url),
      { method: 'POST', localAddress: from, headers: { ...headers, 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined, text, headers: res.headers }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** Logs in over the API and returns the token. */
export async function login(url: string, id: string, secret: string): Promise<string> {
  const response = await call(url, 'POST', '/v1/auth/token', { body: { id, secret } });
  if (response.status !== 200) throw new Error(`login of ${id} failed: ${response.status} ${response.text}`);
  return response.body.token as string;
}

/** A logger at `level` whose records the test reads from `records` (filled as they are written, one per line). */
export function capturingLogger(level: LevelWithSilent): { logger: Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  let partial = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop()!;
      for (const line of lines) if (line !== '') records.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level }, sink), records };
}
