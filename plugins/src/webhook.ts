#!/usr/bin/env node
// webhook: hands the hooks it is configured for to an HTTP service, as Gloo's custom and
// passthrough auth do.
// - mode forward (PRE/POST hooks): the service answers 2xx to allow (optionally with a changed
//   object or state), 4xx to veto with its message; a 5xx, a refused connection or a timeout is a
//   failure, which the host's failureMode for this plugin decides (closed: the request fails; open: skipped).
// - mode notify (committed hooks): each committed event is posted after the commit, outside any
//   request; anything but a 2xx fails the delivery and the server's outbox delivers it again later.
// Every post is signed with the operator's current key (webhook/signing.ts) when keys are
// configured, may be limited to some operations, and `keyhold plugin verify` pings the URL (selfCheck).
import { setTimeout as sleep } from 'node:timers/promises';
import {
  COMMITTED_HOOKS,
  ConfigError,
  ConfiguredPlugin,
  didYouMean,
  hookSpec,
  isCommittedHookName,
  isMainModule,
  OPERATIONS,
  PLUGIN_HOOK_NAMES,
  serve,
  setting,
  unchanged,
  Veto,
  type CommittedEvent,
  type CommittedHookName,
  type DeliveryContext,
  type Entity,
  type Group,
  type HookName,
  type JsonObject,
  type OperationName,
  type PluginContext,
  type PluginHookName,
} from 'keyhold-plugin-sdk';
import { failureOf, isUnavailable, unavailable } from './webhook/failures.js';
import { currentSigningKey, SIGNATURE_HEADER, signatureHeader, signingKeysSetting, type SigningKey } from './webhook/signing.js';

const OPERATION_NAMES: readonly string[] = OPERATIONS.map((o) => o.operation);

const schema = {
  url: setting.string({ nonEmpty: true }),
  /** forward: PRE/POST hooks, the service decides; notify: committed hooks, the service is told. */
  mode: setting.string({ oneOf: ['forward', 'notify'], default: 'forward' }),
  /** The hooks to forward (mode forward: PRE/POST hooks; notify: committed hooks); the host calls this plugin for no others. */
  hooks: setting.stringList({ oneOf: PLUGIN_HOOK_NAMES }),
  /** Only these operations (context.operation, event.operation) are posted; the others pass unchanged. Empty: all. */
  operations: setting.stringList({ default: [] }),
  /** HMAC keys, one marked current (signing.ts); none: posts are unsigned. */
  signingKeys: signingKeysSetting,
  /** How long one HTTP attempt may take. Keep it below the host's timeout for this plugin (default 2 s). */
  timeout: setting.duration({ min: 1, default: '1s' }),
  /** Mode forward: extra attempts when the service is unavailable (connection refused or reset, HTTP 503); never after a timeout. Mode notify retries through the server's outbox instead. */
  retries: setting.integer({ min: 0, max: 10, default: 0 }),
  /** Wait before the first retry, doubled for each next one up to retryMaxInterval. */
  retryBaseInterval: setting.duration({ min: 1, default: '100ms' }),
  retryMaxInterval: setting.duration({ min: 1, default: '1s' }),
  /** Send the plain-text secret of SecretChange along (e.g. to a breached-password service). Off: it is removed. */
  includeSecret: setting.boolean({ default: false }),
  /** Passed as is in every call's `config` field, for the service's own settings. */
  custom: setting.object({ default: {} }),
};

/** What the service may answer with a 2xx; an empty body allows the request unchanged. */
interface Allow {
  subject?: Entity | Group;
  state?: JsonObject;
}

export class Webhook extends ConfiguredPlugin(schema) {
  override readonly name = 'webhook';
  override readonly version = '1.1.0';
  private signingKey: SigningKey | undefined;
  /** The operations posted; undefined: all. */
  private operations: ReadonlySet<string> | undefined;

  override async configure(config: JsonObject): Promise<void> {
    await super.configure(config);
    const { url, mode, hooks, retries, includeSecret, operations, signingKeys } = this.settings;
    if (!URL.canParse(url) || !['http:', 'https:'].includes(new URL(url).protocol))
      throw new ConfigError('url', `expected an http:// or https:// URL, got ${JSON.stringify(url)}`);
    const notify = mode === 'notify';
    const wrong = hooks.find((hook) => isCommittedHookName(hook) !== notify);
    if (wrong !== undefined)
      throw new ConfigError(
        'hooks',
        notify
          ? `mode notify takes committed hooks (committedEntityCreate, …), not ${wrong}`
          : `${wrong} is a committed hook: set mode: notify to post committed events`,
      );
    if (notify && retries > 0)
      throw new ConfigError('retries', 'mode notify is retried by the server (events.maxAttempts): leave retries out');
    if (notify && includeSecret)
      throw new ConfigError('includeSecret', 'committed events never carry a secret: leave includeSecret out in mode notify');
    this.operations = operations.length > 0 ? operationFilter(operations, hooks) : undefined;
    this.signingKey = currentSigningKey(signingKeys);
    for (const hook of hooks) {
      const handler = isCommittedHookName(hook)
        ? (event: CommittedEvent, context: DeliveryContext) => this.notify(hook, event, context)
        : (subject: Entity | Group, request: JsonObject, context: PluginContext) => this.forward(hook, subject, request, context);
      Object.assign(this, { [hook]: handler });
    }
  }

  /** Posts a committed event once; a failure makes the server deliver it again later. */
  async notify(hook: CommittedHookName, event: CommittedEvent, context: DeliveryContext): Promise<void> {
    if (this.operations?.has(event.operation) === false) return;
    const body = JSON.stringify({ hook, event, attempt: context.attempt, config: this.settings.custom });
    try {
      await this.attempt(hook, body, context.signal);
    } catch (err) {
      // A committed change cannot be refused: a 4xx is a failed delivery like any other.
      if (err instanceof Veto) throw new Error(`${this.settings.url} refused the event: ${err.message}`);
      throw err;
    }
  }

  async forward<S extends Entity | Group>(
    hook: HookName,
    subject: S,
    request: JsonObject,
    context: PluginContext,
  ): Promise<S | typeof unchanged> {
    if (this.operations?.has(context.operation) === false) return unchanged;
    const { includeSecret, custom } = this.settings;
    const { secret: _secret, ...withoutSecret } = request;
    const { signal, ...wireContext } = context;
    const body = JSON.stringify({ hook, subject, request: includeSecret ? request : withoutSecret, context: wireContext, config: custom });
    const answer = await this.post(hook, body, context.deadline, signal);
    if (answer.subject !== undefined) subject = answer.subject as S;
    if (answer.state !== undefined) context.state = answer.state;
    return subject;
  }

  /**
   * Posts `body`, retrying while the service is unavailable, within the retry budget and the host's
   * deadline; `cancelled` (the host gave up on the call) stops the request and any wait at once.
   */
  private async post(hook: HookName, body: string, deadline: number, cancelled: AbortSignal): Promise<Allow> {
    const { retries, retryBaseInterval, retryMaxInterval } = this.settings;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.attempt(hook, body, cancelled);
      } catch (err) {
        const wait = Math.min(retryBaseInterval * 2 ** attempt, retryMaxInterval);
        if (!isUnavailable(err) || attempt >= retries || this.now() + wait >= deadline) throw err;
        this.logger.warn({ attempt: attempt + 1, wait, reason: (err as Error).message }, 'webhook unavailable, retrying');
        await sleep(wait, undefined, { signal: cancelled });
      }
    }
  }

  /** One post of `body` and what the service's answer means; a failure worth a retry isUnavailable(). */
  private async attempt(event: PluginHookName, body: string, cancelled: AbortSignal): Promise<Allow> {
    const { url } = this.settings;
    const response = await this.send(event, body, cancelled);
    const text = await response.text();
    if (response.ok) return allowIn(text, url);
    const message = messageIn(text) || `HTTP ${response.status}`;
    if (response.status >= 400 && response.status < 500) throw new Veto(message);
    const failure = `${url} answered ${response.status}: ${message}`;
    throw response.status === 503 ? unavailable(failure) : new Error(failure);
  }

  /**
   * `keyhold plugin verify`: posts a signed ping (`Keyhold-Event: ping`, body `{"hook":"ping","config":…}`)
   * and fails, saying why, unless the service answers it with a 2xx within the timeout.
   */
  override async selfCheck(): Promise<void> {
    const { url, custom } = this.settings;
    const response = await this.send('ping', JSON.stringify({ hook: 'ping', config: custom }));
    const text = await response.text();
    if (!response.ok)
      throw new Error(`${url} answered the ping with HTTP ${response.status}: ${messageIn(text) || 'no message'}; it must answer 2xx`);
  }

  /** POSTs `body` (UTF-8, exactly the bytes signed) with its event name and signature; throws a described failure when there is no answer. */
  private async send(event: PluginHookName | 'ping', body: string, cancelled?: AbortSignal): Promise<Response> {
    const { url, timeout } = this.settings;
    const bytes = Buffer.from(body, 'utf8');
    const headers: Record<string, string> = { 'content-type': 'application/json', 'keyhold-event': event };
    if (this.signingKey) headers[SIGNATURE_HEADER] = signatureHeader(this.signingKey, Math.floor(this.now() / 1000), bytes);
    try {
      const timedOut = AbortSignal.timeout(timeout);
      const signal = cancelled ? AbortSignal.any([cancelled, timedOut]) : timedOut;
      return await fetch(url, { method: 'POST', headers, body: bytes, signal });
    } catch (err) {
      throw failureOf(err, url, timeout);
    }
  }
}

/**
 * The set of `names` to post, refused when one is no operation (with the closest one) or when no
 * configured hook is at its point, so it would never be posted.
 */
function operationFilter(names: readonly string[], hooks: readonly PluginHookName[]): Set<OperationName> {
  const points = new Set(hooks.map((h) => (isCommittedHookName(h) ? COMMITTED_HOOKS.find((c) => c.name === h)!.point : hookSpec(h).point)));
  for (const name of names) {
    const operation = OPERATIONS.find((o) => o.operation === name);
    if (!operation)
      throw new ConfigError(
        'operations',
        `${JSON.stringify(name)} is no operation${didYouMean(name, OPERATION_NAMES)}; the operations are ${OPERATION_NAMES.join(', ')}`,
      );
    if (!points.has(operation.point))
      throw new ConfigError(
        'operations',
        `${name} runs at ${operation.point}, and hooks has no hook there: add one (e.g. ${hooks.some(isCommittedHookName) ? 'committed' : 'pre'}${operation.point}) or drop ${name}`,
      );
  }
  return new Set(names as OperationName[]);
}

/** A 2xx body: empty, or a JSON object with optional `subject` and `state`. */
function allowIn(text: string, url: string): Allow {
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as Allow;
  } catch {
    throw new Error(`${url} allowed the request but its body is not JSON: ${text.slice(0, 200)}`);
  }
}

/** The service's explanation: a JSON body's `message`, or the text itself. */
function messageIn(text: string): string {
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {
    // Not JSON: the text is the message.
  }
  return text.trim();
}

if (isMainModule(import.meta.url)) serve(new Webhook());
