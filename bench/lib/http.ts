// A small JSON client for the benchmarks: node:http with keep-alive (fetch costs more per request
// than the server does, which would hide the server's own cost).
import { Agent, request } from 'node:http';

export class ApiClient {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 16 });
  token: string | undefined;

  /** `localAddress`: the address requests are sent from (e.g. 127.0.0.7), to play one of many clients. */
  constructor(
    readonly url: string,
    private readonly localAddress?: string,
  ) {}

  /** Sends one request; rejects unless the status is 2xx, with the server's answer in the message. */
  call(method: string, path: string, body?: unknown): Promise<unknown> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = {};
    if (payload !== undefined) headers['content-type'] = 'application/json';
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    return new Promise((resolve, reject) => {
      const req = request(
        new URL(path, this.url),
        { method, headers, agent: this.agent, ...(this.localAddress && { localAddress: this.localAddress }) },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status < 200 || status > 299) return reject(new Error(`${method} ${path}: ${status} ${text}`));
            resolve(text === '' ? undefined : JSON.parse(text));
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Logs in; later calls carry the token. */
  async login(id: string, secret: string): Promise<void> {
    this.token = ((await this.call('POST', '/v1/auth/token', { id, secret })) as { token: string }).token;
  }

  close(): void {
    this.agent.destroy();
  }
}
