// Where the first administrator's id:secret comes from: KEYHOLD_BOOTSTRAP, taken out of the
// server's own environment as soon as it is read (so no process the server starts inherits it),
// or KEYHOLD_BOOTSTRAP_FILE, a file only the server's user may read, read on the first start only.
// Neither hides the secret from the server's own user: /proc/<pid>/environ keeps a process's
// initial environment for its whole life, hence the warnings when either is left in place.
import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from './config.js';
import { accessProblem } from './host/trust.js';

export const BOOTSTRAP_ENV = 'KEYHOLD_BOOTSTRAP';
export const BOOTSTRAP_FILE_ENV = 'KEYHOLD_BOOTSTRAP_FILE';

/** What the environment said about the first administrator. */
export interface BootstrapSource {
  /** The KEYHOLD_BOOTSTRAP value, if set. */
  credentials: string | undefined;
  /** The absolute KEYHOLD_BOOTSTRAP_FILE path, if set. */
  file: string | undefined;
}

export interface RootCredentials {
  id: string;
  secret: string;
}

/**
 * Reads both variables from `env` and deletes KEYHOLD_BOOTSTRAP from this process's environment.
 * Throws ConfigError when both are set. A relative file path is relative to `cwd`.
 */
export function takeBootstrapSource(env: NodeJS.ProcessEnv, cwd: string): BootstrapSource {
  const credentials = env[BOOTSTRAP_ENV] || undefined;
  const file = env[BOOTSTRAP_FILE_ENV] || undefined;
  delete process.env[BOOTSTRAP_ENV];
  if (credentials !== undefined && file !== undefined)
    throw new ConfigError(BOOTSTRAP_FILE_ENV, 'bootstrap', `set ${BOOTSTRAP_ENV} or ${BOOTSTRAP_FILE_ENV}, not both`);
  return { credentials, file: file === undefined ? undefined : resolve(cwd, file) };
}

/** The id:secret `source` names (reading the file), or undefined when it names none. Throws ConfigError for an unusable value or file. */
export async function chosenCredentials(source: BootstrapSource): Promise<RootCredentials | undefined> {
  if (source.credentials !== undefined) return parse(source.credentials, BOOTSTRAP_ENV, '(value)');
  if (source.file !== undefined) return parse(await readBootstrapFile(source.file), BOOTSTRAP_FILE_ENV, source.file);
  return undefined;
}

function parse(text: string, variable: string, where: string): RootCredentials {
  const at = text.indexOf(':');
  if (at < 1 || at === text.length - 1 || /[\r\n]/.test(text))
    throw new ConfigError(variable, where, 'expected id:secret on one line (both non-empty)');
  return { id: text.slice(0, at), secret: text.slice(at + 1) };
}

/** What other users must not be able to do to the file: read the secret, or write one of their own. */
const BOOTSTRAP_FILE_RULE = {
  bits: 0o066,
  access: 'readable or writable',
  chmod: 'chmod 600',
  chownTo: process.getuid?.() === 0 ? 'root' : String(process.getuid?.()),
};

/** The file's text without its trailing line break; refuses a file another user could read or change. */
async function readBootstrapFile(path: string): Promise<string> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw new ConfigError(BOOTSTRAP_FILE_ENV, path, `cannot read it: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    // The checked file is the one read: both go through the same open descriptor.
    const problem = accessProblem(await handle.stat(), BOOTSTRAP_FILE_RULE);
    if (problem)
      throw new ConfigError(
        BOOTSTRAP_FILE_ENV,
        path,
        `the file ${problem.state}, so other users could read or choose the first administrator's secret; fix: ${problem.fix} ${path}`,
      );
    return (await handle.readFile('utf8')).replace(/[\r\n]+$/, '');
  } finally {
    await handle.close();
  }
}

/** On a store that already has entities: says what to remove, since both stay readable to the server's user. */
export function warnUnusedBootstrap(source: BootstrapSource, logger: Logger): void {
  if (source.credentials !== undefined) {
    logger.warn(
      `${BOOTSTRAP_ENV} is set but ignored: the store already has entities. Remove it from the service's environment: every process of the server's user (plugins included) can read it in /proc/${process.pid}/environ for as long as the server runs`,
    );
  }
  if (source.file !== undefined && existsSync(source.file)) {
    logger.warn(
      `${BOOTSTRAP_FILE_ENV} is ignored: the store already has entities. Delete ${source.file} (and the variable): it holds the first administrator's secret`,
    );
  }
}
