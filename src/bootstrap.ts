// First start: an empty store gets a `root` entity holding GLOBAL_ROOT, so there is someone to
// log in as. KEYHOLD_BOOTSTRAP=id:secret (or KEYHOLD_BOOTSTRAP_FILE) chooses both; otherwise the
// id is `root` and a random secret is generated and printed once (to stdout, never to the log),
// with how to log in.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { chosenCredentials, warnUnusedBootstrap, type BootstrapSource } from './bootstrap-credentials.js';
import type { IdentityOperations } from './identity/operations.js';
import { serverRequest } from './lifecycle/engine.js';

export const DEFAULT_ROOT_ID = 'root';
/** The URL the CLI talks to when not told otherwise. */
export const DEFAULT_SERVER_URL = 'http://127.0.0.1:8470';

export interface BootstrapOptions {
  identity: IdentityOperations;
  countEntities(): Promise<number>;
  /** Records the root's id in the store: login policy plugins exempt it by default (break-glass, src/host/break-glass.ts). */
  recordRoot(id: string): Promise<void>;
  /** KEYHOLD_BOOTSTRAP or KEYHOLD_BOOTSTRAP_FILE, if set (takeBootstrapSource). */
  source: BootstrapSource;
  logger: Logger;
}

/** Credentials the server made up, to be shown once. */
export interface GeneratedRoot {
  id: string;
  secret: string;
}

/**
 * Creates the root entity when there are no entities; otherwise warns about a bootstrap setting
 * left in place. Returns the credentials when it generated them (none given), for bootstrapNotice.
 */
export async function bootstrapRoot({
  identity,
  countEntities,
  recordRoot,
  source,
  logger,
}: BootstrapOptions): Promise<GeneratedRoot | null> {
  if ((await countEntities()) > 0) {
    warnUnusedBootstrap(source, logger);
    return null;
  }
  const given = await chosenCredentials(source);
  const { id, secret } = given ?? { id: DEFAULT_ROOT_ID, secret: randomBytes(24).toString('base64url') };
  // Recorded first: should the create fail, the store is still empty and the next start records its own root.
  await recordRoot(id);
  // One operation, so a failure cannot leave a root without GLOBAL_ROOT (bootstrap never runs again once an entity exists).
  await identity.createEntity(serverRequest('bootstrap'), { id, secret, capabilities: ['GLOBAL_ROOT'] });
  logger.info({ entity: id }, 'bootstrap: created the first entity with GLOBAL_ROOT');
  return given ? null : { id, secret };
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
