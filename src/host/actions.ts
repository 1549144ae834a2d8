// Plugin admin actions (docs/protocol.md "action"): a small, general way for an operator to reach
// one plugin, e.g. `keyhold entity totp enrol ID`. The API allows it to GLOBAL_ROOT callers only;
// here the action is routed to the loaded plugin that declared it, and its failures become the
// same stable errors as a hook's.
import { type JsonObject } from 'keyhold-plugin-sdk';
import { KeyholdError } from '../errors.js';
import { PLUGIN_FAILURE_CODES, PluginCallError } from '../lifecycle/dispatcher.js';
import type { PluginSupervisor } from './supervisor.js';

/** Runs `action` of the plugin called `name` among `plugins`; throws a KeyholdError naming the plugin and the action. */
export async function runAction(
  plugins: readonly PluginSupervisor[],
  name: string,
  action: string,
  args: JsonObject,
  context: { requestId: string; caller: string | null },
): Promise<JsonObject> {
  const plugin = plugins.find((p) => p.name === name);
  if (!plugin?.declaration.actions?.includes(action)) {
    const offered = plugin?.declaration.actions?.join(', ');
    throw new KeyholdError(
      'KH_ERR_ACTION_NOT_FOUND',
      plugin === undefined
        ? `no plugin "${name}" is loaded; keyhold plugin list shows those that are`
        : `plugin "${name}" has no action "${action}"${offered ? `; it offers: ${offered}` : ''}`,
      { plugin: name, action },
    );
  }
  try {
    return await plugin.action({ action, args, context });
  } catch (err) {
    const kind = err instanceof PluginCallError ? err.kind : 'crash';
    const reason = (err as Error).message;
    const verb = kind === 'veto' ? 'refused' : 'failed';
    throw new KeyholdError(PLUGIN_FAILURE_CODES[kind], `plugin "${name}" ${verb} action ${action}: ${reason}`, {
      plugin: name,
      action,
      reason,
    });
  }
}
