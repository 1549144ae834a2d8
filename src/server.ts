// The composition root: config → logger → store → outbox → lifecycle engine → identity → bootstrap →
// plugin host → HTTP API, listening last. `startServer` returns a handle so tests can run a real
// server on port 0 in-process; `keyhold serve` adds the signal handling (installSignalHandlers).
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { buildApi } from './api/app.js';
import { TokenRevocation } from './api/revocation.js';
import { TokenService } from './api/tokens.js';
import { bootstrapNotice, bootstrapRoot, type GeneratedRoot } from './bootstrap.js';
import { takeBootstrapSource } from './bootstrap-credentials.js';
import { checkListenSafety, loadConfig, type KeyholdConfig, type LoadConfigOptions } from './config.js';
import { Outbox } from './events/outbox.js';
import { PluginHost } from './host/host.js';
import { HashSlots } from './identity/hash-slots.js';
import { Identity } from './identity/identity.js';
import { LoginThrottle } from './identity/login-throttle.js';
import { LifecycleEngine } from './lifecycle/engine.js';
import { NO_PLUGINS, type HookDispatcher } from './lifecycle/dispatcher.js';
import { createLogger } from './logging.js';
import { checkListenAddress, listenError, makeDataDir } from './startup-checks.js';
import { openStore } from './store/open-store.js';
import { VERSION } from './version.js';

export { DATABASE_FILE } from './store/open-store.js';

export interface StartOptions {
  /** --config; otherwise KEYHOLD_CONFIG or ./keyhold.yaml. */
  configFile?: string;
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Where relative paths resolve; defaults to the working directory. */
  cwd?: string;
  /** A logger to use instead of one built from the config (tests). */
  logger?: Logger;
  /** Where the one-time bootstrap secret is printed; defaults to stdout. */
  print?(text: string): void;
}

export interface ServerHandle {
  url: string;
  config: KeyholdConfig;
  logger: Logger;
  /** Loads the plugin set again with the `plugins:` settings read again (SIGHUP, POST /v1/plugins/reload); the old set stays when the settings or a new plugin fail. */
  reloadPlugins: PluginHost['reload'];
  /** Stops accepting requests, waits for those in flight, stops plugins and closes the store. Safe to call twice. */
  close(): Promise<void>;
}

/** The URL clients on this machine use (a wildcard listen address is reached through loopback). */
function urlOf(config: KeyholdConfig, port: number): string {
  const listen = config.listen.host === '0.0.0.0' ? '127.0.0.1' : config.listen.host === '::' ? '::1' : config.listen.host;
  const host = listen.includes(':') ? `[${listen}]` : listen;
  return `${config.tls ? 'https' : 'http'}://${host}:${port}`;
}

export async function startServer(options: StartOptions = {}): Promise<ServerHandle> {
  const env = options.env ?? process.env;
  // First of all: the initial root secret leaves the server's environment before anything can be started.
  const bootstrap = takeBootstrapSource(env, options.cwd ?? process.cwd());
  // Kept for plugin reloads, which read the settings again from the same place.
  const configSource: LoadConfigOptions = {
    ...(options.configFile !== undefined && { file: options.configFile }),
    env,
    cwd: options.cwd ?? process.cwd(),
  };
  const config = loadConfig(configSource);
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const insecureWarning = checkListenSafety(config);
  if (insecureWarning) logger.warn(insecureWarning);
  const tls = config.tls ? { cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) } : undefined;

  await checkListenAddress(config);
  makeDataDir(config);
  // The SQLite store holds the data directory's lock until it is closed, the last cleanup (they run in reverse).
  const opened = await openStore(config, logger);
  const store = opened.store;
  const cleanups: (() => Promise<void>)[] = [() => opened.close()];
  const print = options.print ?? ((text: string) => process.stdout.write(`${text}\n`));
  // Generated root credentials exist only here until printed: they are printed even if the start fails later.
  let unprinted: GeneratedRoot | null = null;
  const closeAll = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((err: unknown) => logger.error({ err }, 'error while shutting down'));
    cleanups.length = 0;
  };
  try {
    const metrics = new Registry();
    collectDefaultMetrics({ register: metrics, prefix: 'keyhold_' });
    const outbox = new Outbox({ store, settings: config.events, logger, registry: metrics });
    const engine = new LifecycleEngine(store, NO_PLUGINS, () => outbox.wake());
    const identity = new Identity(store, engine, { hash: config.hash, slots: new HashSlots(config.hashSlots, metrics) });
    const tokens = await TokenService.open(store, config.tokenTtlMs, config.dataDir, logger);
    const onSwap = (dispatcher: HookDispatcher) => {
      // The outbox first: a new subscriber's cursor is placed before any request runs on the new set.
      void outbox.use(dispatcher.subscribers ?? []);
      engine.setDispatcher(dispatcher);
    };
    // A reload takes the `plugins:` section as the file says then; the rest of a changed file needs a restart (it is checked all the same).
    const readSettings = () => loadConfig(configSource).plugins;
    const accounts = {
      bootstrapRoot: () => store.reader.bootstrapRoot(),
      exists: async (id: string) => (await store.reader.getEntity(id)) !== undefined,
    };
    const plugins = new PluginHost({
      settings: config.plugins,
      readSettings,
      accounts,
      pluginState: store.pluginState,
      logger,
      registry: metrics,
      hostVersion: VERSION,
      onSwap,
    });
    plugins.onStateChange((status) => status.state === 'ready' && outbox.pluginReady(status.name));
    // Cleanups run in reverse: the HTTP server closes (waiting for requests in flight), then the
    // outbox stops (deliveries in flight finish, cursors are written), then the plugins stop.
    cleanups.push(() => plugins.stop());
    cleanups.push(() => outbox.stop());

    // Bootstrap runs before plugins load: the first administrator must not depend on site policy.
    unprinted = await bootstrapRoot({
      identity,
      countEntities: () => store.reader.countEntities(),
      recordRoot: (id) => store.write((tx) => tx.recordBootstrapRoot(id)),
      source: bootstrap,
      logger,
    });
    // Plugins start before the server listens, so no request is ever served without the site's policy.
    await plugins.start();

    const app = await buildApi({
      identity,
      tokens,
      revocation: new TokenRevocation(store, (id) => identity.effectiveCapabilities(id)),
      throttle: new LoginThrottle(store, config.loginThrottle),
      logger,
      metrics,
      bodyLimitBytes: config.bodyLimitBytes,
      storeCheck: () => store.reader.countEntities(),
      storeHealth: () => store.health(),
      plugins,
      events: outbox,
      clientAddress: config.api,
      pluginState: store.pluginState,
      forwardAuth: { settings: config.forwardAuth, store },
      ...(tls && { tls }),
    });
    cleanups.push(() => app.close());
    // fastify logs its own "Server listening at" line(s) at info; the start line below is the one
    // record that says the server is up (with the port chosen for port 0), so fastify's is muted.
    const level = app.log.level;
    app.log.level = 'warn';
    await app
      .listen({ host: config.listen.host, port: config.listen.port })
      .catch((err: unknown) => {
        throw listenError(err, config);
      })
      .finally(() => (app.log.level = level));
    const address = app.server.address();
    const url = urlOf(config, typeof address === 'object' && address ? address.port : config.listen.port);
    if (unprinted) print(bootstrapNotice(unprinted, url));
    unprinted = null;
    const loaded = plugins.status().map((p) => p.name);
    const pluginSource = config.plugins.list ? 'the settings list' : config.plugins.directory;
    logger.info(
      { url, dataDir: config.dataDir, config: config.file ?? '(defaults)', plugins: loaded },
      `keyhold listening on ${url} with ${loaded.length} plugin(s) from ${pluginSource}${loaded.length ? `: ${loaded.join(', ')}` : ''}`,
    );
    return { url, config, logger, reloadPlugins: (settings) => plugins.reload(settings), close: closeAll };
  } catch (err) {
    if (unprinted) print(bootstrapNotice(unprinted, urlOf(config, config.listen.port)));
    await closeAll();
    throw err;
  }
}

/** SIGINT/SIGTERM: graceful shutdown, then exit (a second signal exits at once); SIGHUP: reload the plugins. */
export function installSignalHandlers(handle: ServerHandle): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    handle.logger.info({ signal }, 'shutting down');
    handle.close().then(
      () => process.exit(0),
      (err: unknown) => {
        handle.logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('SIGHUP', () => {
    handle.logger.info('SIGHUP: reloading plugins');
    // The outcome is logged by the plugin host.
    handle.reloadPlugins().catch((err: unknown) => handle.logger.error({ err }, 'plugin reload failed'));
  });
}
