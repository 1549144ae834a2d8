// The host's side of verify plugins (docs/protocol.md "verify"): at load, the server's settings
// for one (verifyMode, verifyFallback) checked against what it declared at its handshake; then
// the Verifier the AuthCheck step calls, with its calls measured and logged like hook calls.
import { parseClaimRule, type VerifyDeclaration, type VerifyMode } from 'keyhold-plugin-sdk';
import type { Logger } from 'pino';
import { PluginCallError, type Verifier } from '../lifecycle/dispatcher.js';
import { measureCall, type PluginMetrics } from './metrics.js';
import type { PluginEntry } from './settings.js';
import type { PluginSupervisor } from './supervisor.js';

/**
 * The mode a plugin verifies in under `entry`, or undefined when it declared no verify. Throws an
 * Error saying which setting to change when the settings and the declaration do not fit.
 */
export function verifyModeOf(name: string, entry: PluginEntry, declared: VerifyDeclaration | undefined): VerifyMode | undefined {
  const key = `plugins.plugins.${name}`;
  if (declared === undefined) {
    if (entry.verifyMode !== undefined || entry.verifyFallback !== 'none')
      throw new Error(`${key} sets verifyMode or verifyFallback, but the plugin does not verify secrets; remove those settings`);
    return undefined;
  }
  if (entry.mode === 'shadow')
    throw new Error(
      `the plugin verifies secrets, which cannot be trialled in shadow mode (its answer decides logins); remove ${key}.mode: shadow`,
    );
  const mode = entry.verifyMode ?? declared.modes[0]!;
  if (!declared.modes.includes(mode))
    throw new Error(
      `the plugin verifies in ${declared.modes.join(' or ')} mode only, not ${mode}; set ${key}.verifyMode to ${declared.modes[0]}`,
    );
  return mode;
}

/** The Verifier of a loaded verify plugin, or undefined for one that does not verify. */
export function verifierFor(
  plugin: PluginSupervisor,
  logger: Logger,
  metrics: PluginMetrics,
  exempt: ReadonlySet<string>,
): Verifier | undefined {
  const { declaration, verifyMode } = plugin;
  if (declaration.verify === undefined || verifyMode === undefined) return undefined;
  const measured = metrics.forCall(plugin.name, 'verify');
  return {
    plugin: plugin.name,
    claims: declaration.verify.claims.map(parseClaimRule),
    mode: verifyMode,
    fallback: plugin.entry.verifyFallback,
    exempt,
    async verify(params) {
      try {
        return await measureCall(measured, () => plugin.verify(params));
      } catch (err) {
        const kind = err instanceof PluginCallError ? err.kind : 'crash';
        logger.warn(
          { reqId: params.context.requestId, plugin: plugin.name, entity: params.entity.id, kind, reason: (err as Error).message },
          `verify plugin "${plugin.name}" gave no answer for "${params.entity.id}" (${kind}): ${(err as Error).message}`,
        );
        throw err;
      }
    },
    exempted(reqId, entity) {
      logger.info(
        { reqId, plugin: plugin.name, entity },
        `break-glass: verify plugin "${plugin.name}" not asked: entity "${entity}" is exempt`,
      );
      metrics.exempted(plugin.name, 'verify');
    },
  };
}
