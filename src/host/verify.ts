// `keyhold plugin verify`: discovery and the handshake without a server. Each plugin is started,
// asked for its own checks (`selfCheck`: e.g. the webhook pings its service), reported as loaded
// (name, version, hooks) or with the exact reason it cannot be, then stopped.
import { pino, type Logger } from 'pino';
import type { PluginHookName } from 'keyhold-plugin-sdk';
import { VERSION } from '../version.js';
import { loadPlugins, stopPlugins } from './host.js';
import type { PluginSettings } from './settings.js';
import type { PluginSupervisor } from './supervisor.js';

export type VerifyResult =
  | { ok: true; name: string; path: string; version: string; hooks: PluginHookName[]; selfChecked: boolean }
  | { ok: false; name: string; path: string; reason: string };

/** Verifies the plugins in `paths` (directories are scanned, files taken as named) with the per-plugin settings of `settings`. */
export async function verifyPlugins(
  paths: readonly string[],
  settings: PluginSettings,
  logger: Logger = pino({ level: 'silent' }),
): Promise<VerifyResult[]> {
  const { loaded, failures } = await loadPlugins(paths, settings, { logger, hostVersion: VERSION, restart: false });
  const results = await Promise.all(loaded.map(checked));
  await stopPlugins(loaded);
  for (const { name, path, reason } of failures) results.push({ ok: false, name, path, reason });
  return results.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** A loaded plugin's result: ok unless its own checks fail. */
async function checked(plugin: PluginSupervisor): Promise<VerifyResult> {
  const { name, path, version, hooks } = plugin.status();
  try {
    const selfChecked = await plugin.selfCheck();
    return { ok: true, name, path, version: version ?? '', hooks, selfChecked };
  } catch (err) {
    return { ok: false, name, path, reason: `its own check failed: ${(err as Error).message}` };
  }
}
