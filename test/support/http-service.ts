// A loopback HTTP service for tests of plugins that call out (webhook): each test sets how it
// answers; it keeps the JSON bodies it received.
import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JsonObject } from 'keyhold-plugin-sdk';

export type Handler = (body: JsonObject, res: ServerResponse) => void;

export class HttpService {
  handler: Handler = (_body, res) => res.end();
  readonly received: JsonObject[] = [];
  private readonly server: Server = createServer((req, res) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    req.on('end', () => {
      const body = JSON.parse(text) as JsonObject;
      this.received.push(body);
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
