// First start: an empty store gets a `root` entity holding GLOBAL_ROOT, so there is someone to
// log in as. KEYHOLD_BOOTSTRAP=id:secret chooses both; otherwise the id is `root` and a random
// secret is generated and printed once (to stdout, never to the log), with how to log in.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { KeyholdError } from './errors.js';
import type { IdentityOperations } from './identity/operations.js';
import { serverRequest } from './lifecycle/engine.js';

export const BOOTSTRAP_ENV = 'KEYHOLD_BOOTSTRAP';
export const DEFAULT_ROOT_ID = 'root';
/** The URL the CLI talks to when not told otherwise. */
export const DEFAULT_SERVER_URL = 'http://127.0.0.1:8470';

export interface BootstrapOptions {
  identity: IdentityOperations;
  countEntities(): Promise<number>;
  /** Records the root's id in the store: login policy plugins exempt it by default (break-glass, src/host/break-glass.ts). */
  recordRoot(id: string): Promise<void>;
  /** The KEYHOLD_BOOTSTRAP value, if set. */
  credentials: string | undefined;
  logger: Logger;
}

/** Credentials the server made up, to be shown once. */
export interface GeneratedRoot {
  id: string;
  secret: string;
}

/**
 * Creates the root entity when there are no entities; does nothing otherwise. Returns the
 * credentials when it generated them (no KEYHOLD_BOOTSTRAP), for bootstrapNotice.
 */
export async function bootstrapRoot({ identity, countEntities, recordRoot, credentials, logger }: BootstrapOptions): Promise<GeneratedRoot | null> {
  if ((await countEntities()) > 0) {
    if (credentials) logger.info(`${BOOTSTRAP_ENV} is ignored: the store already has entities`);
    return null;
  }
  let id = DEFAULT_ROOT_ID;
  let secret = randomBytes(24).toString('base64url');
  if (credentials) {
    const at = credentials.indexOf(':');
    if (at < 1 || at === credentials.length - 1) throw new KeyholdError('KH_ERR_INVALID_INPUT', `${BOOTSTRAP_ENV} must be id:secret (both non-empty)`);
    id = credentials.slice(0, at);
    secret = credentials.slice(at + 1);
  }
  // Recorded first: should the create fail, the store is still empty and the next start records its own root.
  await recordRoot(id);
  // One operation, so a failure cannot leave a root without GLOBAL_ROOT (bootstrap never runs again once an entity exists).
  await identity.createEntity(serverRequest('bootstrap'), { id, secret, capabilities: ['GLOBAL_ROOT'] });
  logger.info({ entity: id }, 'bootstrap: created the first entity with GLOBAL_ROOT');
  return credentials ? null : { id, secret };
}

/** The one-time message with the generated secret and how to log in to the server at `url`. */
export function bootstrapNotice({ id, secret }: GeneratedRoot, url: string): string {
  const server = url === DEFAULT_SERVER_URL ? '' : ` --server ${url}`;
  return [
    '',
    '  keyhold: first start, created the administrator entity.',
    `    id:     ${id}`,
    `    secret: ${secret}`,
    '  This secret is shown only this once. Log in with:',
    `    keyhold auth login ${id}${server}`,
    `  (from this checkout, without installing the keyhold command: node dist/src/cli/main.js auth login ${id}${server})`,
    `  then change it with: keyhold auth change-secret ${id}${server}`,
    '',
  ].join('\n');
}
