// vscode-jsonrpc for the SDK, loaded with require() rather than import: importing a CommonJS
// package from ES modules makes Node scan its sources for their export names first, which cost
// every plugin process about 8 ms and 1.5 MiB at start (docs/performance.md). It is the same
// module instance the host gets from its own imports (one CommonJS cache).
import { createRequire } from 'node:module';
import type * as JsonRpc from 'vscode-jsonrpc/node';

const jsonrpc = createRequire(import.meta.url)('vscode-jsonrpc/node') as typeof JsonRpc;

export const { AbstractMessageReader, AbstractMessageWriter, createMessageConnection, ErrorCodes, NotificationType, RequestType, RequestType0, ResponseError } = jsonrpc;
export type ResponseError<D = void> = JsonRpc.ResponseError<D>;
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
