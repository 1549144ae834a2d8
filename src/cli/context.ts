// What every command needs: the client for --server (with the saved or KEYHOLD_TOKEN token),
// whether --json was asked for, and output helpers that honour it.
import type { Command } from 'commander';
import type { Entity, Group } from 'keyhold-plugin-sdk';
import { DEFAULT_SERVER_URL } from '../bootstrap.js';
import { serverUrl } from './arguments.js';
import { ApiClient, CliError, type ExpiredTokenHandler } from './client.js';
import { loadLogin, saveLogin, type SavedLogin } from './credentials.js';
import { readSecrets } from './secret-input.js';

export interface GlobalOptions {
  server: string;
  json: boolean;
}

export interface TokenResponse {
  token: string;
  expiresAt: string;
  id: string;
  capabilities: string[];
}

export class CommandContext {
  readonly client: ApiClient;
  readonly server: string;
  readonly json: boolean;

  /** `renewLogin: false`: a refused token is an answer to report, not a reason to ask for the secret (logout). */
  constructor(command: Command, { renewLogin = true }: { renewLogin?: boolean } = {}) {
    const { server, json } = command.optsWithGlobals<GlobalOptions>();
    this.server = serverUrl(server);
    this.json = json;
    const saved = process.env.KEYHOLD_TOKEN ? undefined : loadLogin(this.server);
    this.client = new ApiClient(this.server, process.env.KEYHOLD_TOKEN || saved?.token, renewLogin ? this.expired(saved) : undefined);
  }

  /** Gets a token for `id` and saves it for this server. */
  async login(id: string, secret: string): Promise<TokenResponse> {
    const result = await this.client.post<TokenResponse>('/v1/auth/token', { id, secret });
    saveLogin(this.server, { id: result.id, token: result.token, expiresAt: result.expiresAt });
    return result;
  }

  /**
   * A token that ran out: at a terminal, with a saved login, the secret is asked for and the
   * command goes on; otherwise the error names the command that logs in again.
   */
  private expired(saved: SavedLogin | undefined): ExpiredTokenHandler {
    return async (refusal) => {
      const server = this.server === DEFAULT_SERVER_URL ? '' : ` --server ${this.server}`;
      const again = `keyhold auth login ${saved?.id ?? 'ID'}${server}`;
      const reason = refusal.body?.message ?? refusal.message;
      if (!saved || this.json || !process.stdin.isTTY || !process.stderr.isTTY)
        throw new CliError(`${reason}: ${again} [${refusal.body?.code}]`, 1, refusal.body);
      process.stderr.write(`keyhold: ${reason}; logging in again as ${saved.id}\n`);
      const [secret] = await readSecrets([{ label: `secret for ${saved.id}` }], false);
      return (await this.login(saved.id, secret!)).token;
    };
  }

  /** Prints `value` as JSON with --json, otherwise runs `human`. */
  print(value: unknown, human: () => void): void {
    if (this.json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    else human();
  }

  /** A one-line confirmation for people; with --json, `value` instead. */
  done(message: string, value: unknown = { ok: true }): void {
    this.print(value, () => line(message));
  }
}

export function defaultServer(): string {
  return process.env.KEYHOLD_SERVER || DEFAULT_SERVER_URL;
}

export function line(text = ''): void {
  process.stdout.write(`${text}\n`);
}

/** Left-aligned columns; `rows` under `headers`. */
export function table(headers: string[], rows: string[][]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const format = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  line(format(headers));
  for (const row of rows) line(format(row));
}

/** "key: value" lines, skipping empty values. */
export function fields(pairs: [string, string | number | boolean | readonly string[]][]): void {
  const shown = pairs.filter(([, v]) => v !== '' && !(Array.isArray(v) && v.length === 0));
  const width = Math.max(...shown.map(([k]) => k.length));
  for (const [key, value] of shown) line(`${`${key}:`.padEnd(width + 1)} ${Array.isArray(value) ? value.join(', ') : String(value)}`);
}

function kvLines(kv: Record<string, { values: string[] }>): string[] {
  return Object.entries(kv).map(([k, v]) => `${k}=${v.values.join(',')}`);
}

export function printEntity(entity: Entity): void {
  const m = entity.meta;
  fields([
    ['id', entity.id],
    ['number', entity.number],
    ['display name', m.displayName],
    ['legal name', m.legalName],
    ['primary group', m.primaryGroup],
    ['gecos', m.gecos],
    ['home', m.home],
    ['shell', m.shell],
    ['graphical shell', m.graphicalShell],
    ['badge number', m.badgeNumber],
    ['locked', m.locked ? 'yes' : 'no'],
    ['groups', m.groups],
    ['capabilities', m.capabilities],
    ['keys', m.keys.length ? `${m.keys.length} (keyhold entity keys ${entity.id})` : ''],
    ['untyped meta', m.untypedMeta],
    ['kv', kvLines(m.kv)],
  ]);
}

export function printGroup(group: Group): void {
  fields([
    ['name', group.name],
    ['number', group.number],
    ['display name', group.displayName],
    ['managed by', group.managedBy],
    ['capabilities', group.capabilities],
    ['expansions', group.expansions.map((e) => `${e.mode}:${e.group}`)],
    ['untyped meta', group.untypedMeta],
    ['kv', kvLines(group.kv)],
  ]);
}
