// The SDK's heavier dependencies (pino, protobufjs) are loaded on first use, not at start
// (docs/performance.md), and from the SDK's own package: also when the SDK is bundled into a
// plugin's single file, whose project may not hold them at its top (a strict package manager
// keeps them under the SDK).
import { createRequire } from 'node:module';

let fromSdk: NodeJS.Require | undefined;

/** `require(name)` as the SDK's package resolves it; the calling file's location when the SDK package cannot be found. */
export function requireDependency(name: string): unknown {
  if (!fromSdk) {
    const here = createRequire(import.meta.url);
    let sdk: string | undefined;
    try {
      sdk = here.resolve('keyhold-plugin-sdk');
    } catch {
      // A bundled plugin copied away from its project: its own location is all there is.
    }
    fromSdk = sdk === undefined ? here : createRequire(sdk);
  }
  return fromSdk(name);
}
