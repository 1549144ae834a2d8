// The answers Node's HTTP parser gives on its own, before fastify sees a request: a request
// line or headers over the size limit (431), a request that did not arrive in time (408), bytes
// that are not HTTP (400). They get the catalog's error body like every other answer, instead
// of fastify's default `{error, message, statusCode}`.
import { maxHeaderSize, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { KeyholdError } from '../errors.js';

/** The catalog error for an error Node's HTTP server reports as 'clientError'. */
export function clientErrorFor(err: NodeJS.ErrnoException): KeyholdError {
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    return new KeyholdError(
      'KH_ERR_HEADERS_TOO_LARGE',
      `the request line and headers are over the limit of ${maxHeaderSize} bytes; send a shorter URL (query string) or smaller headers`,
      { limitBytes: maxHeaderSize },
    );
  }
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT')
    return new KeyholdError('KH_ERR_REQUEST_TIMEOUT', 'the request did not arrive in time; send it again');
  return new KeyholdError('KH_ERR_INVALID_INPUT', `the request cannot be read as HTTP/1.1 (${err.code ?? err.message})`, {
    reason: err.code ?? 'bad request',
  });
}

/** fastify's `clientErrorHandler`: writes the error as a whole HTTP response and closes the connection. */
export function answerClientError(this: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket): void {
  // A reset connection has nobody left to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const error = clientErrorFor(err);
  this.log.debug({ err }, `client error: ${error.message}`);
  if (socket.writable) {
    const body = JSON.stringify(error.toJSON());
    socket.write(
      `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status]}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}
