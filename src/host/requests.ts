// The protocol's messages other than hook calls (docs/protocol.md section 3), typed for the host's
// vscode-jsonrpc connection (wire.ts). Hook calls take their own lane (hook-calls.ts).
import type {
  ActionParams,
  CommittedParams,
  InitializeParams,
  InitializeResult,
  JsonObject,
  LogParams,
  VerifyParams,
  VerifyResult,
} from 'keyhold-plugin-sdk';
import { NotificationType, RequestType, RequestType0 } from 'vscode-jsonrpc/node';

export const InitializeRequest = new RequestType<InitializeParams, InitializeResult, void>('initialize');
/** Answered with null once the plugin is done with the event; an error makes the host deliver it again later. */
export const CommittedRequest = new RequestType<CommittedParams, null, void>('committed');
/** Sent by `keyhold plugin verify` only: null when the plugin's own checks pass, an error saying why not; MethodNotFound when it has none. */
export const SelfCheckRequest = new RequestType0<null, void>('selfCheck');
/** The one call that carries a presented secret (verify plugins only, for the entities they claim). */
export const VerifyRequest = new RequestType<VerifyParams, VerifyResult, void>('verify');
export const ActionRequest = new RequestType<ActionParams, JsonObject, void>('action');
export const PingRequest = new RequestType0<null, void>('$/ping');
export const ShutdownRequest = new RequestType0<null, void>('shutdown');
export const LogNotification = new NotificationType<LogParams>('$/log');
