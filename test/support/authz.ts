// What the authorization tests share: a server administered by its bootstrap root (set-up
// requests that must succeed), entities holding chosen capabilities with their tokens, and a
// snapshot of every identity table read straight from the database file (secret hashes and
// memberships included, at any size), for "a refused request wrote nothing".
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Capability } from 'keyhold-plugin-sdk';
import { DATABASE_FILE } from '../../src/server.js';
import { call, login, startTestServer, type ApiResponse, type TestServer } from './keyhold.js';

export const ROOT_SECRET = 'root-secret';
/** The secret of every entity the tests create with one. */
export const SECRET = 'entity-secret';

/** The tables that hold entities, groups, memberships and expansions. */
const IDENTITY_TABLES = ['entities', 'groups', 'memberships', 'expansions'] as const;

export class AuthzServer {
  private constructor(
    readonly server: TestServer,
    /** The bootstrap root's token. */
    readonly root: string,
    private readonly db: Database.Database,
  ) {}

  static async start(): Promise<AuthzServer> {
    const server = await startTestServer(ROOT_SECRET);
    const root = await login(server.url, 'root', ROOT_SECRET);
    return new AuthzServer(server, root, new Database(join(server.dataDir, DATABASE_FILE), { readonly: true }));
  }

  async close(): Promise<void> {
    this.db.close();
    await this.server.close();
  }

  /** A request as `token` (or anonymous). */
  call(token: string | undefined, method: string, path: string, body?: unknown): Promise<ApiResponse> {
    return call(this.server.url, method, path, { ...(token !== undefined && { token }), ...(body !== undefined && { body }) });
  }

  /** A set-up request as root, which must succeed. */
  async asRoot(method: string, path: string, body?: unknown): Promise<ApiResponse> {
    const response = await this.call(this.root, method, path, body);
    assert.ok(response.status < 300, `setup ${method} ${path}: ${response.status} ${response.text}`);
    return response;
  }

  /** An entity with `secret`, holding `capabilities` directly. */
  async entity(id: string, capabilities: readonly Capability[] = [], secret = SECRET): Promise<string> {
    await this.asRoot('POST', '/v1/entities', { id, secret });
    for (const value of capabilities) await this.asRoot('POST', `/v1/entities/${id}/capabilities`, { action: 'add', value });
    return id;
  }

  async group(name: string, body: Record<string, unknown> = {}): Promise<string> {
    await this.asRoot('POST', '/v1/groups', { name, ...body });
    return name;
  }

  async member(group: string, id: string): Promise<void> {
    await this.asRoot('PUT', `/v1/groups/${group}/members/${id}`);
  }

  /** A fresh login's token, or undefined when the login is refused. */
  async login(id: string, secret = SECRET): Promise<string | undefined> {
    const response = await this.call(undefined, 'POST', '/v1/auth/token', { id, secret });
    return response.status === 200 ? (response.body.token as string) : undefined;
  }

  /** The capabilities a fresh login of `id` gets, or undefined when it cannot log in. */
  async loginCapabilities(id: string, secret = SECRET): Promise<Capability[] | undefined> {
    const response = await this.call(undefined, 'POST', '/v1/auth/token', { id, secret });
    return response.status === 200 ? (response.body.capabilities as Capability[]) : undefined;
  }

  /** Every row of the identity tables, as committed. */
  snapshot(): Record<string, unknown[]> {
    return Object.fromEntries(IDENTITY_TABLES.map((table) => [table, this.db.prepare(`SELECT * FROM ${table} ORDER BY 1, 2`).all()]));
  }
}
