// Secrets come from a prompt that does not echo, or from stdin (--secret-stdin, one secret per
// line), never from the command line, where they would sit in shell history and `ps` output.
import { usageError } from './client.js';

function promptHidden(label: string): Promise<string> {
  const stdin = process.stdin;
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (result: () => void) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      result();
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return finish(() => resolve(value));
        if (ch === '\u0003' || ch === '\u0004') return finish(() => reject(usageError('cancelled')));
        value = ch === '\u007f' || ch === '\b' ? value.slice(0, -1) : value + ch;
      }
    };
    process.stderr.write(label);
    stdin.setEncoding('utf8');
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onData);
  });
}

async function readStdinLines(): Promise<string[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/);
}

export interface SecretRequest {
  label: string;
  /** Ask twice and compare (for a new secret typed at a prompt). */
  confirm?: boolean;
}

/** The option of every command that reads secrets: `.option(...SECRET_STDIN_OPTION)`, then `readSecrets(…, options.secretStdin)`. */
export const SECRET_STDIN_OPTION = [
  '--secret-stdin',
  'read the secret(s) from stdin, one a line in the order prompted, instead of prompting',
] as const;

/** Reads the secrets asked for, in order: from stdin lines when `fromStdin`, otherwise from prompts. */
export async function readSecrets(requests: SecretRequest[], fromStdin: boolean): Promise<string[]> {
  if (fromStdin) {
    const lines = await readStdinLines();
    const secrets = requests.map((_, i) => lines[i] ?? '');
    const missing = requests.findIndex((_, i) => secrets[i] === '');
    if (missing >= 0)
      throw usageError(
        `--secret-stdin: expected ${requests.length} non-empty line(s) on stdin (${requests.map((r) => r.label).join(', ')}); line ${missing + 1} is missing or empty`,
      );
    return secrets;
  }
  if (!process.stdin.isTTY) throw usageError('no terminal to prompt for the secret on; pass it on stdin with --secret-stdin');
  const secrets: string[] = [];
  for (const request of requests) {
    const secret = await promptHidden(`${request.label}: `);
    if (secret === '') throw usageError(`${request.label} must not be empty`);
    if (request.confirm && (await promptHidden(`${request.label} (again): `)) !== secret) throw usageError('the two entries differ');
    secrets.push(secret);
  }
  return secrets;
}
