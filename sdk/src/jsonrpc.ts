// vscode-jsonrpc as the SDK and the host use it: one copy, bundled into a single CommonJS file at
// build (scripts/bundle-jsonrpc.mjs) and loaded with require(). Every plugin process loads it at
// start, and its ~20 files imported from ES modules (which makes Node scan each for export names)
// cost about 20 ms and 6 MiB more (docs/performance.md). The host takes these exports from here
// too (`jsonrpc` in the SDK's index), so that classes like ResponseError are one class, not two.
import { createRequire } from 'node:module';
import type * as JsonRpc from 'vscode-jsonrpc/node';

const jsonrpc = createRequire(import.meta.url)('./vendor/vscode-jsonrpc.cjs') as typeof JsonRpc;

export const {
  AbstractMessageReader,
  AbstractMessageWriter,
  CancellationTokenSource,
  createMessageConnection,
  ErrorCodes,
  NotificationType,
  RequestType,
  RequestType0,
  ResponseError,
} = jsonrpc;
export type {
  CancellationToken,
  DataCallback,
  Disposable,
  Message,
  MessageConnection,
  MessageReader,
  MessageStrategy,
  MessageWriter,
} from 'vscode-jsonrpc/node';
