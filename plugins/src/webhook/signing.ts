// The webhook's request signature: an HMAC-SHA256 over "<unix seconds>.<body bytes>" with the
// current one of the operator's keys, sent as `Keyhold-Signature: t=…,kid=…,v1=<hex>`, so that the
// service can tell keyhold's posts from anyone else's and refuse an old one replayed
// (plugins/README.md#signatures gives the receiver's side). Keys are read once, at initialize:
// a key that is too short, a key file others may read, or no single current key is refused there.
import { createHmac } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { ConfigError, type ConfigField, type JsonObject, type JsonValue } from 'keyhold-plugin-sdk';

export const SIGNATURE_HEADER = 'keyhold-signature';

/** Characters of a key at least: 32 is what `openssl rand -hex 16` prints; a shorter HMAC key can be guessed. */
const MIN_KEY_CHARS = 32;
/** A key id goes into the header between `,` and `=`: none of those, nor spaces. */
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;
const KEY_FIELDS = ['id', 'secret', 'keyFile', 'current'];

/** One key as configured: where the secret comes from. */
export type SigningKeyConfig = JsonObject;

/** The key the plugin signs with. */
export interface SigningKey {
  readonly id: string;
  /** The key's bytes: the UTF-8 of the configured text, as `openssl dgst -hmac TEXT` takes it. */
  readonly secret: Buffer;
}

/** `signingKeys`: a list of objects, checked one by one by currentSigningKey (a typed setting could only say "wrong"). */
export const signingKeysSetting: ConfigField<SigningKeyConfig[]> = {
  expected: 'a list of keys, each {id, secret or keyFile, current}',
  default: [],
  parse: (raw: JsonValue) =>
    Array.isArray(raw) && raw.every((k) => k !== null && typeof k === 'object' && !Array.isArray(k)) ? (raw as JsonObject[]) : undefined,
};

/**
 * The key marked current among `keys` (a single key is current without the mark), every key's
 * secret read; undefined when no key is configured (posts are then unsigned). Throws ConfigError naming
 * the key and field; a secret is never part of a message.
 */
export function currentSigningKey(keys: readonly SigningKeyConfig[]): SigningKey | undefined {
  if (keys.length === 0) return undefined;
  const seen = new Set<string>();
  keys.forEach((key, i) => {
    const where = `signingKeys[${i}]`;
    const unknown = Object.keys(key).find((field) => !KEY_FIELDS.includes(field));
    if (unknown !== undefined) throw new ConfigError(`${where}.${unknown}`, `unknown field; a key has ${KEY_FIELDS.join(', ')}`);
    if (typeof key.id !== 'string' || !KEY_ID.test(key.id))
      throw new ConfigError(`${where}.id`, 'expected 1 to 64 letters, digits, ".", "_" or "-": the receiver looks the key up by it');
    if (seen.has(key.id)) throw new ConfigError(`${where}.id`, `${key.id} is the id of an earlier key too: give each key its own id`);
    seen.add(key.id);
    if ((key.secret === undefined) === (key.keyFile === undefined))
      throw new ConfigError(where, 'give exactly one of secret (the key itself) and keyFile (a file holding it, mode 0600)');
    if (key.current !== undefined && typeof key.current !== 'boolean') throw new ConfigError(`${where}.current`, 'expected true or false');
  });
  const current = keys.length === 1 ? [0] : keys.flatMap((key, i) => (key.current === true ? [i] : []));
  if (current.length !== 1)
    throw new ConfigError(
      'signingKeys',
      `mark exactly one key current: true (the one to sign with), found ${current.length}; the others are listed for the rotation only`,
    );
  // Every key's secret is read, not only the current one's: a key added for the next rotation is checked before it signs.
  const read = keys.map((key, i) => ({ id: key.id as string, secret: Buffer.from(secretOf(key, `signingKeys[${i}]`), 'utf8') }));
  return read[current[0]!];
}

function secretOf(key: SigningKeyConfig, where: string): string {
  let secret: string;
  if (key.keyFile !== undefined) {
    if (typeof key.keyFile !== 'string' || key.keyFile === '') throw new ConfigError(`${where}.keyFile`, 'expected the path of a file');
    secret = readKeyFile(key.keyFile, `${where}.keyFile`);
  } else {
    if (typeof key.secret !== 'string') throw new ConfigError(`${where}.secret`, 'expected a string');
    secret = key.secret;
  }
  if ([...secret].length < MIN_KEY_CHARS)
    throw new ConfigError(
      key.keyFile !== undefined ? `${where}.keyFile` : `${where}.secret`,
      `the key has fewer than ${MIN_KEY_CHARS} characters: make one with openssl rand -hex 32`,
    );
  return secret;
}

/** The key in `file`, one trailing newline removed; refused when group or others may read the file. */
function readKeyFile(file: string, where: string): string {
  let mode: number;
  try {
    const info = statSync(file);
    if (!info.isFile()) throw new ConfigError(where, `${file} is not a regular file`);
    mode = info.mode;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(
      where,
      `cannot read ${file}: ${(err as Error).message}; use an absolute path (a plugin runs in its own directory)`,
    );
  }
  if ((mode & 0o077) !== 0)
    throw new ConfigError(
      where,
      `${file} may be read or written by its group or others (mode ${(mode & 0o777).toString(8).padStart(4, '0')}): run chmod 600 ${file}`,
    );
  return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
}

/** The Keyhold-Signature value for `body` posted at `seconds` (Unix time). */
export function signatureHeader(key: SigningKey, seconds: number, body: Buffer): string {
  const mac = createHmac('sha256', key.secret).update(`${seconds}.`).update(body).digest('hex');
  return `t=${seconds},kid=${key.id},v1=${mac}`;
}
