// Saved logins: one token per server URL in $XDG_CONFIG_HOME/keyhold/credentials.json (or
// ~/.config/keyhold/…), readable by the user alone (file 0600, directory 0700).
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface SavedLogin {
  id: string;
  token: string;
  expiresAt: string;
}

type CredentialsFile = Record<string, SavedLogin>;

export function credentialsPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'keyhold', 'credentials.json');
}

function readAll(file: string): CredentialsFile {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as CredentialsFile) : {};
  } catch {
    return {};
  }
}

function writeAll(file: string, all: CredentialsFile): void {
  mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${JSON.stringify(all, null, 2)}\n`, { mode: 0o600 });
  // writeFileSync's mode applies only when it creates the file.
  chmodSync(file, 0o600);
}

export function loadLogin(server: string): SavedLogin | undefined {
  return readAll(credentialsPath())[server];
}

export function saveLogin(server: string, login: SavedLogin): void {
  const file = credentialsPath();
  writeAll(file, { ...readAll(file), [server]: login });
}

export function forgetLogin(server: string): boolean {
  const file = credentialsPath();
  const all = readAll(file);
  if (!(server in all)) return false;
  delete all[server];
  writeAll(file, all);
  return true;
}
