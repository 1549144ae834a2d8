// A plugin file is both the executable the host starts and a module its tests import:
// `if (isMainModule(import.meta.url)) serve(new MyPlugin())` serves only in the first case.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** True when the module at `moduleUrl` is the script node was started with (symlinks resolved, as node does). */
export function isMainModule(moduleUrl: string): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}
