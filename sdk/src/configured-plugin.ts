// The base class of a plugin with settings: `class MyPlugin extends ConfiguredPlugin(schema)`
// gets `this.settings`, typed from the schema and read from the server's YAML at initialize.
import { readConfig, type ConfigSchema, type ConfigValues } from './config.js';
import { NullPlugin } from './null-plugin.js';
import type { JsonObject } from './protocol.js';

/** A NullPlugin whose configure() reads its settings by `schema`; a config that does not fit is refused with readConfig's message. */
export function ConfiguredPlugin<S extends ConfigSchema>(schema: S) {
  return class extends NullPlugin {
    /** Set at initialize, before any hook is called. */
    settings!: ConfigValues<S>;

    /** Override to do more with the settings (open a file, …): call `super.configure(config)` first. */
    override configure(config: JsonObject): void | Promise<void> {
      this.settings = readConfig(schema, config);
    }
  };
}
