// A loopback HTTP service for tests of plugins that call out (webhook): each test sets how it
// answers; it keeps the JSON bodies it received, and each request's headers and exact bytes (for signatures).
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JsonObject } from 'keyhold-plugin-sdk';

export type Handler = (body: JsonObject, res: ServerResponse) => void;

/** One request as it arrived. */
export interface ReceivedRequest {
  headers: IncomingHttpHeaders;
  /** The body's bytes as sent. */
  raw: Buffer;
}

export class HttpService {
  handler: Handler = (_body, res) => res.end();
  readonly received: JsonObject[] = [];
  /** The same requests as `received`, with their headers and bytes. */
  readonly requests: ReceivedRequest[] = [];
  private readonly server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const body = JSON.parse(raw.toString('utf8')) as JsonObject;
      this.received.push(body);
      this.requests.push({ headers: req.headers, raw });
      this.handler(body, res);
    });
  });

  /** Listens on 127.0.0.1, a free port; resolves with the URL to configure. */
  async listen(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Answers with `status` and, if given, `body` as JSON. */
export function reply(res: ServerResponse, status: number, body?: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(body === undefined ? undefined : JSON.stringify(body));
}
