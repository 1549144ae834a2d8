// The one HTTP client every CLI command uses: JSON in and out, the bearer token attached, the CLI
// named in keyhold-client and User-Agent (plugins see it in their hook context; informative only),
// and every failure turned into a CliError that main.ts prints and maps to an exit code.
import { CLIENT_HEADER } from '../api/request-origin.js';
import { VERSION } from '../version.js';

export class CliError extends Error {
  constructor(
    message: string,
    /** 1: refused or failed; 2: usage. */
    readonly exitCode: 1 | 2 = 1,
    /** The server's error body, when the server answered with one. */
    readonly body?: { code: string; message: string; details?: Record<string, unknown> },
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** A mistake in how the command was called (exit code 2). */
export function usageError(message: string): CliError {
  return new CliError(message, 2);
}

/** What the client does when the server says the token has run out: a new token to retry with, or an error to throw. */
export type ExpiredTokenHandler = (refusal: CliError) => Promise<string>;

/** The codes with which the server refuses a token that was once good: a new login fixes them. */
const EXPIRED_CODES: readonly string[] = ['KH_ERR_TOKEN_EXPIRED', 'KH_ERR_TOKEN_REVOKED'];

export class ApiClient {
  constructor(
    readonly server: string,
    private token: string | undefined,
    private readonly onExpired?: ExpiredTokenHandler,
  ) {}

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, body);
  }

  put<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('PUT', path, body);
  }

  delete<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    try {
      return await this.send<T>(method, path, body);
    } catch (err) {
      if (!(this.token && this.onExpired && err instanceof CliError && EXPIRED_CODES.includes(err.body?.code ?? ''))) throw err;
      this.token = await this.onExpired(err);
      return this.send<T>(method, path, body);
    }
  }

  private async send<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {
      accept: 'application/json',
      'user-agent': `keyhold-cli/${VERSION}`,
      [CLIENT_HEADER]: `cli/${VERSION}`,
    };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(new URL(path, this.server), { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(
        `cannot reach the keyhold server at ${this.server} (${cause?.code ?? cause?.message ?? (err as Error).message}); is it running? Set --server or KEYHOLD_SERVER.`,
      );
    }
    const text = await response.text();
    const parsed = text === '' ? undefined : safeJson(text);
    if (!response.ok) {
      const error = parsed as { code?: unknown; message?: unknown } | undefined;
      if (error && typeof error.code === 'string' && typeof error.message === 'string') {
        throw new CliError(`${error.message} [${error.code}]`, 1, parsed as CliError['body']);
      }
      throw new CliError(`the server answered ${response.status} ${response.statusText}`);
    }
    return parsed as T;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Encodes an id or name for use as one path segment. */
export function seg(value: string): string {
  return encodeURIComponent(value);
}
