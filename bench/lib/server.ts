// A keyhold server in a child process over a temporary data directory, with low argon2
// parameters (hashing is measured on its own) and the given `plugins:` section; `settings`
// adds or replaces other top-level settings (e.g. `forwardAuth`, `loginThrottle`, or `hash` where it is measured).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { HashParams } from '../../src/identity/secrets.js';
import { minimalEnv } from './env.js';
import { ApiClient } from './http.js';

/** Cheap enough that an AuthCheck measures the server and its plugins, not argon2. */
export const LOW_HASH: HashParams = { memoryCost: 256, timeCost: 1, parallelism: 1 };
export const ROOT = { id: 'root', secret: 'bench-root-secret' };

export interface ServerProcess {
  pid: number;
  /** Logged in as root. */
  api: ApiClient;
  close(): Promise<void>;
}

/** `bootstrap: false` for a second server on a database that already has its root (the variable would only draw a warning). */
export async function startServerProcess(
  plugins: Record<string, unknown>,
  settings: Record<string, unknown> = {},
  { bootstrap = true } = {},
): Promise<ServerProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'keyhold-bench-data-'));
  const configFile = join(dataDir, 'keyhold.yaml');
  // JSON is YAML.
  writeFileSync(
    configFile,
    JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, dataDir, logLevel: 'warn', hash: LOW_HASH, plugins, ...settings }),
  );
  const child = spawn(process.execPath, [fileURLToPath(new URL('../fixtures/server.js', import.meta.url)), configFile], {
    env: minimalEnv(bootstrap ? { KEYHOLD_BOOTSTRAP: `${ROOT.id}:${ROOT.secret}` } : {}),
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit');
  const close = async () => {
    child.stdin.end();
    if (child.exitCode === null && child.signalCode === null) await exited;
    rmSync(dataDir, { recursive: true, force: true });
  };
  const listening = once(createInterface({ input: child.stdout }), 'line');
  let api: ApiClient;
  let pid: number;
  try {
    const [line] = (await Promise.race([
      listening,
      exited.then(([code]) => Promise.reject(new Error(`the bench server exited with ${code} before listening`))),
    ])) as [string];
    const started = JSON.parse(line) as { url: string; pid: number };
    pid = started.pid;
    api = new ApiClient(started.url);
    await api.login(ROOT.id, ROOT.secret);
  } catch (err) {
    await close();
    throw err;
  }
  return {
    pid,
    api,
    close: async () => {
      api.close();
      await close();
    },
  };
}
