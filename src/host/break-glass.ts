// Break-glass: the way back in when a policy plugin is broken. A plugin is never called for the
// entities it exempts (as a hook's subject: for AuthCheck, the entity logging in; nor asked to
// verify their secret: the built-in check decides for them), so a plugin that crashes on or
// refuses every login still lets them in. A plugin that hooks AuthCheck or verifies secrets
// exempts the bootstrap root unless its settings list others (`exempt:`); one that could refuse
// every login with no existing entity exempt is not loaded, unless the operator accepts that
// risk in writing (`allowLockout: true`).
import type { PluginHookName } from 'keyhold-plugin-sdk';
import type { LoadFailure } from './host.js';
import type { PluginSupervisor } from './supervisor.js';

/** What break-glass needs to know about the accounts (the server's store). */
export interface AccountDirectory {
  /** The id the first start created the root with, as recorded then. */
  bootstrapRoot(): Promise<string | undefined>;
  exists(id: string): Promise<boolean>;
}

const AUTH_HOOKS: readonly PluginHookName[] = ['preAuthCheck', 'postAuthCheck'];

export interface Exemptions {
  /** Each plugin's exempt entity ids, for the dispatcher. */
  byPlugin: Map<string, ReadonlySet<string>>;
  /** The plugins that could lock every login out, with why and the two ways out. */
  refused: LoadFailure[];
  /** Listed ids that name no entity (they exempt nobody until such an entity exists). */
  warnings: string[];
}

/** Why the exemption of `plugin` holds no existing entity, for the refusal. */
function emptiness(listed: readonly string[] | undefined, root: string | undefined): string {
  if (listed === undefined)
    return root === undefined
      ? 'no bootstrap root is recorded to exempt by default'
      : `its default exemption, the bootstrap root "${root}", no longer exists`;
  if (listed.length === 0) return 'its settings exempt nobody (exempt: [])';
  return `none of the entities its settings exempt (${listed.join(', ')}) exists`;
}

/** Resolves every plugin's exempt entities and finds those that could lock everyone out. */
export async function resolveExemptions(plugins: readonly PluginSupervisor[], accounts: AccountDirectory): Promise<Exemptions> {
  const root = await accounts.bootstrapRoot();
  const result: Exemptions = { byPlugin: new Map(), refused: [], warnings: [] };
  for (const plugin of plugins) {
    const { exempt: listed, mode, allowLockout } = plugin.entry;
    const authHooks = plugin.hooks.filter((hook) => AUTH_HOOKS.includes(hook));
    const verifies = plugin.declaration.verify !== undefined;
    const ids = listed ?? ((authHooks.length > 0 || verifies) && root !== undefined ? [root] : []);
    const existing: string[] = [];
    for (const id of ids) {
      if (await accounts.exists(id)) existing.push(id);
      else if (listed !== undefined)
        result.warnings.push(
          `plugins.plugins.${plugin.name}.exempt names "${id}", which is not an entity: it exempts nobody until one with that id exists`,
        );
    }
    // An explicit list is kept as written; the default only while the root exists (its id could be taken by a new entity).
    result.byPlugin.set(plugin.name, new Set(listed ?? existing));
    // A shadow plugin refuses nothing; an open one is skipped when it fails, but its vetoes still count.
    if (mode === 'shadow' || (authHooks.length === 0 && !verifies) || existing.length > 0 || allowLockout) continue;
    const what = [...(authHooks.length > 0 ? [`hooks ${authHooks.join(' and ')}`] : []), ...(verifies ? ['verifies secrets'] : [])];
    result.refused.push({
      name: plugin.name,
      path: plugin.file.path,
      reason:
        `it ${what.join(' and ')} and ${emptiness(listed, root)}, so if it breaks or refuses every login nobody can log in to fix it; ` +
        `exempt an administrator (plugins.plugins.${plugin.name}.exempt: [<entity id>]) or accept the risk (plugins.plugins.${plugin.name}.allowLockout: true)`,
    });
  }
  return result;
}
