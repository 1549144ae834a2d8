// Plugin state on the host's side (docs/protocol.md, "State"): the `state/…` requests a plugin
// sends on its own connection are served in the namespace of that connection's plugin, by the
// SDK's StateService (the rules the test harness applies too) over the server's store. A plugin
// cannot name another namespace: the host picks it. Expired entries are pruned now and then.
import { StateError, StateErrorCodes, StateService, STATE_LIMITS, STATE_METHODS, type StateLimits } from 'keyhold-plugin-sdk';
import type { Logger } from 'pino';
import { ResponseError, type MessageConnection } from 'vscode-jsonrpc/node';
import { isKeyholdError } from '../errors.js';
import { pluginNamespace, type PluginStateStore } from '../store/plugin-state.js';

/** Expired entries are deleted at most this often (on a state request, not on a timer). */
const PRUNE_EVERY_MS = 60_000;

export class PluginStateHost {
  private lastPrune = 0;

  constructor(
    private readonly store: PluginStateStore,
    private readonly logger: Logger,
  ) {}

  /** What initialize tells plugins the host offers. */
  get limits(): StateLimits {
    return STATE_LIMITS;
  }

  /** Serves `plugin`'s state requests on `connection` (one service per process: its limit of requests in flight is per connection). */
  serve(connection: MessageConnection, plugin: string): void {
    const service = new StateService(pluginNamespace(this.store, plugin));
    for (const method of STATE_METHODS) {
      connection.onRequest(method, (params: unknown) => {
        this.pruneNowAndThen();
        return service.handle(method, params).catch((err: unknown) => {
          throw asAnswer(method, err);
        });
      });
    }
  }

  private pruneNowAndThen(): void {
    const now = Date.now();
    if (now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    this.store.prune(now).then(
      (pruned) => pruned > 0 && this.logger.debug({ pruned }, 'expired plugin state entries deleted'),
      (err: unknown) => this.logger.warn({ err }, 'could not delete expired plugin state entries; retried later'),
    );
  }
}

/** A refused or failed state request as the JSON-RPC error the plugin gets: the rule's words, or what the store said. */
function asAnswer(method: string, err: unknown): ResponseError<void> {
  if (err instanceof StateError) return new ResponseError(err.code, err.message);
  if (isKeyholdError(err))
    return new ResponseError(
      StateErrorCodes.Unavailable,
      `${method}: the server's store: ${err.message} [${err.code}]; nothing was written`,
    );
  return new ResponseError(
    StateErrorCodes.Unavailable,
    `${method} failed in the host: ${err instanceof Error ? err.message : String(err)}`,
  );
}
