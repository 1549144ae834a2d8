// `keyhold plugin verify`: discovery and the handshake without a server. Each plugin is started,
// reported as loaded (name, version, hooks) or with the exact reason it cannot be, then stopped.
import { pino, type Logger } from 'pino';
import type { PluginHookName } from 'keyhold-plugin-sdk';
import { VERSION } from '../version.js';
import { loadPlugins, stopPlugins } from './host.js';
import type { PluginSettings } from './settings.js';

export type VerifyResult =
  | { ok: true; name: string; path: string; version: string; hooks: PluginHookName[] }
  | { ok: false; name: string; path: string; reason: string };

/** Verifies the plugins in `paths` (directories are scanned, files taken as named) with the per-plugin settings of `settings`. */
export async function verifyPlugins(
  paths: readonly string[],
  settings: PluginSettings,
  logger: Logger = pino({ level: 'silent' }),
): Promise<VerifyResult[]> {
  const { loaded, failures } = await loadPlugins(paths, settings, { logger, hostVersion: VERSION, restart: false });
  const results: VerifyResult[] = loaded.map((p) => {
    const { name, path, version, hooks } = p.status();
    return { ok: true, name, path, version: version ?? '', hooks };
  });
  await stopPlugins(loaded);
  for (const { name, path, reason } of failures) results.push({ ok: false, name, path, reason });
  return results.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
