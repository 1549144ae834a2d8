#!/usr/bin/env node
// webhook: hands the hooks it is configured for to an HTTP service, as Gloo's custom and
// passthrough auth do.
// - mode forward (PRE/POST hooks): the service answers 2xx to allow (optionally with a changed
//   object or state), 4xx to veto with its message; a 5xx, a refused connection or a timeout is a
//   failure, which the host's failureMode for this plugin decides (closed: the request fails; open: skipped).
// - mode notify (committed hooks): each committed event is posted after the commit, outside any
//   request; anything but a 2xx fails the delivery and the server's outbox delivers it again later.
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ConfigError,
  ConfiguredPlugin,
  isCommittedHookName,
  isMainModule,
  PLUGIN_HOOK_NAMES,
  serve,
  setting,
  Veto,
  type CommittedEvent,
  type CommittedHookName,
  type DeliveryContext,
  type Entity,
  type Group,
  type HookName,
  type JsonObject,
  type PluginContext,
} from 'keyhold-plugin-sdk';

const schema = {
  url: setting.string({ nonEmpty: true }),
  /** forward: PRE/POST hooks, the service decides; notify: committed hooks, the service is told. */
  mode: setting.string({ oneOf: ['forward', 'notify'], default: 'forward' }),
  /** The hooks to forward (mode forward: PRE/POST hooks; notify: committed hooks); the host calls this plugin for no others. */
  hooks: setting.stringList({ oneOf: PLUGIN_HOOK_NAMES }),
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

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'UND_ERR_SOCKET']);

/** A service that could not take the call at all: worth a retry. */
class Unavailable extends Error {}

export class Webhook extends ConfiguredPlugin(schema) {
  override readonly name = 'webhook';
  override readonly version = '1.0.0';
  override async configure(config: JsonObject): Promise<void> {
    await super.configure(config);
    const { mode, hooks, retries, includeSecret } = this.settings;
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
    for (const hook of hooks) {
      const handler = isCommittedHookName(hook)
        ? (event: CommittedEvent, context: DeliveryContext) => this.notify(hook, event, context)
        : (subject: Entity | Group, request: JsonObject, context: PluginContext) => this.forward(hook, subject, request, context);
      Object.assign(this, { [hook]: handler });
    }
  }

  /** Posts a committed event once; a failure makes the server deliver it again later. */
  async notify(hook: CommittedHookName, event: CommittedEvent, context: DeliveryContext): Promise<void> {
    const body = JSON.stringify({ hook, event, attempt: context.attempt, config: this.settings.custom });
    try {
      await this.attempt(body, context.signal);
    } catch (err) {
      // A committed change cannot be refused: a 4xx is a failed delivery like any other.
      if (err instanceof Veto) throw new Error(`${this.settings.url} refused the event: ${err.message}`);
      throw err;
    }
  }

  async forward<S extends Entity | Group>(hook: HookName, subject: S, request: JsonObject, context: PluginContext): Promise<S> {
    const { includeSecret, custom } = this.settings;
    const { secret: _secret, ...withoutSecret } = request;
    const { signal, ...wireContext } = context;
    const body = JSON.stringify({ hook, subject, request: includeSecret ? request : withoutSecret, context: wireContext, config: custom });
    const answer = await this.post(body, context.deadline, signal);
    if (answer.subject !== undefined) subject = answer.subject as S;
    if (answer.state !== undefined) context.state = answer.state;
    return subject;
  }

  /**
   * Posts `body`, retrying while the service is unavailable, within the retry budget and the host's
   * deadline; `cancelled` (the host gave up on the call) stops the request and any wait at once.
   */
  private async post(body: string, deadline: number, cancelled: AbortSignal): Promise<Allow> {
    const { retries, retryBaseInterval, retryMaxInterval } = this.settings;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.attempt(body, cancelled);
      } catch (err) {
        const wait = Math.min(retryBaseInterval * 2 ** attempt, retryMaxInterval);
        if (!(err instanceof Unavailable) || attempt >= retries || this.now() + wait >= deadline) throw err;
        this.logger.warn({ attempt: attempt + 1, wait, reason: err.message }, 'webhook unavailable, retrying');
        await sleep(wait, undefined, { signal: cancelled });
      }
    }
  }

  private async attempt(body: string, cancelled: AbortSignal): Promise<Allow> {
    const { url, timeout } = this.settings;
    let response: Response;
    try {
      const signal = AbortSignal.any([cancelled, AbortSignal.timeout(timeout)]);
      response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal });
    } catch (err) {
      if (err instanceof Error && err.name === 'TimeoutError') throw new Error(`${url} did not answer within ${timeout} ms`);
      const code = (err as { cause?: { code?: string } }).cause?.code;
      if (code && UNAVAILABLE_CODES.has(code)) throw new Unavailable(`${url} is unavailable (${code})`);
      throw new Error(`${url} could not be called: ${(err as Error).message}`);
    }
    const text = await response.text();
    if (response.ok) return allowIn(text, url);
    const message = messageIn(text) || `HTTP ${response.status}`;
    if (response.status >= 400 && response.status < 500) throw new Veto(message);
    const failure = `${url} answered ${response.status}: ${message}`;
    throw response.status === 503 ? new Unavailable(failure) : new Error(failure);
  }
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
