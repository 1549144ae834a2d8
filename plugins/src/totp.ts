#!/usr/bin/env node
// totp: RFC 6238 time-based one-time codes as a second factor. A verify plugin in `also` mode:
// the login secret is the password followed by the current code (or a recovery code); the plugin
// checks and cuts off the code, the server's built-in check verifies the password that is left.
// Enrolment is an admin action (`keyhold entity totp enrol ID`); secrets, the last code used
// (replay refusal) and hashed recovery codes live in the host-provided plugin state (this.state):
// in the server's store, kept over restarts and shared by the servers on one database.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  ConfiguredPlugin,
  isMainModule,
  parseClaimRule,
  serve,
  setting,
  Veto,
  type Entity,
  type JsonObject,
  type PluginVerifyContext,
  type VerifyResult,
} from 'keyhold-plugin-sdk';

const ALGORITHMS = { SHA1: 'sha1', SHA256: 'sha256', SHA512: 'sha512' } as const;
type Algorithm = keyof typeof ALGORITHMS;

const schema = {
  algorithm: setting.string({ oneOf: Object.keys(ALGORITHMS), default: 'SHA1' }),
  digits: setting.integer({ min: 6, max: 8, default: 6 }),
  /** The time step in seconds. */
  period: setting.integer({ min: 1, max: 300, default: 30 }),
  /** Steps accepted before and after the current one, for clocks that drift and codes typed slowly. */
  window: setting.integer({ min: 0, max: 10, default: 1 }),
  /** Shown by authenticator apps beside the account. */
  issuer: setting.string({ nonEmpty: true, default: 'keyhold' }),
  /** The entities whose logins need a code (claim rules); default: those marked `verify.<plugin name>:…`, which `keyhold entity totp enrol` sets. */
  claims: setting.stringList({ default: ['marker'] }),
  recoveryCodes: setting.integer({ min: 0, max: 20, default: 10 }),
};

// RFC 4648 base32, the alphabet of otpauth:// secrets.
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export function base32Encode(bytes: Uint8Array): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) out += BASE32[(value >>> (bits -= 5)) & 31];
  }
  return bits > 0 ? out + BASE32[(value << (5 - bits)) & 31] : out;
}

export function base32Decode(text: string): Buffer {
  const bytes: number[] = [];
  let bits = 0;
  let value = 0;
  for (const char of text.replace(/=+$/, '').toUpperCase()) {
    const index = BASE32.indexOf(char);
    if (index < 0) throw new Error(`not base32: ${JSON.stringify(char)}`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) bytes.push((value >>> (bits -= 8)) & 255);
  }
  return Buffer.from(bytes);
}

/** The HOTP value (RFC 4226) of `counter`, which TOTP (RFC 6238) takes as floor(unix time / period). */
export function totpCode(key: Uint8Array, counter: number, digits: number, algorithm: Algorithm = 'SHA1'): string {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac(ALGORITHMS[algorithm], key).update(message).digest();
  const offset = mac[mac.length - 1]! & 15;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

const secretKey = (id: string) => `secret/${id}`;
const lastKey = (id: string) => `last-step/${id}`;
const recoveryKey = (id: string) => `recovery/${id}`;
const hashOf = (code: string) => createHash('sha256').update(code).digest('hex');
/** Recovery codes: 10 base32 characters (50 bits) in two groups, e.g. `k7q2m-xa4pd`. */
const RECOVERY = /^(.*)([a-z2-7]{5}-[a-z2-7]{5})$/s;

function sameCode(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

function entityArg(args: JsonObject): string {
  const { entity } = args;
  if (typeof entity !== 'string' || entity === '') throw new Veto('give the entity to enrol: {"entity": "<id>"}');
  return entity;
}

export class Totp extends ConfiguredPlugin(schema) {
  override name = 'totp';
  override version = '1.0.0';
  override verifyModes = ['also' as const];

  override configure(config: JsonObject): void {
    super.configure(config);
    // Checked here so that a bad rule is refused with the setting's name.
    for (const claim of this.settings.claims) {
      try {
        parseClaimRule(claim);
      } catch (err) {
        throw new Error(`config "claims": ${(err as Error).message}`);
      }
    }
    this.verifyClaims = this.settings.claims;
  }

  override actions = {
    /** Makes a new TOTP secret and recovery codes for `entity`; shown once, in this answer only. */
    enrol: async (args: JsonObject): Promise<JsonObject> => {
      const entity = entityArg(args);
      if ((await this.state.get(secretKey(entity))) !== undefined && args.force !== true)
        throw new Veto(
          `"${entity}" is already enrolled; enrol again with force (its current authenticator and recovery codes stop working)`,
        );
      const { algorithm, digits, period, issuer, recoveryCodes } = this.settings;
      const secret = base32Encode(randomBytes(20));
      const codes = Array.from({ length: recoveryCodes }, () => {
        const text = base32Encode(randomBytes(7)).slice(0, 10).toLowerCase();
        return `${text.slice(0, 5)}-${text.slice(5)}`;
      });
      await this.state.set(secretKey(entity), secret);
      await this.state.set(recoveryKey(entity), JSON.stringify(codes.map(hashOf)));
      await this.state.delete(lastKey(entity));
      const label = encodeURIComponent(`${issuer}:${entity}`);
      const query = new URLSearchParams({ secret, issuer, algorithm, digits: String(digits), period: String(period) });
      this.logger.info({ entity }, 'entity enrolled');
      return { entity, secret, uri: `otpauth://totp/${label}?${query}`, recoveryCodes: codes };
    },
    /** Forgets `entity`'s secret and recovery codes (a claimed entity then cannot log in until enrolled again). */
    remove: async (args: JsonObject): Promise<JsonObject> => {
      const entity = entityArg(args);
      for (const key of [secretKey(entity), recoveryKey(entity), lastKey(entity)]) await this.state.delete(key);
      return { entity, removed: true };
    },
  };

  override async verify(entity: Entity, secret: string, _context: PluginVerifyContext): Promise<VerifyResult> {
    const stored = await this.state.get(secretKey(entity.id));
    if (stored === undefined) return { ok: false, reason: 'not enrolled for TOTP' };
    const { digits } = this.settings;
    const totp = new RegExp(`^(.*)(\\d{${digits}})$`, 's').exec(secret);
    if (totp) return this.checkCode(entity.id, base32Decode(stored), totp[1]!, totp[2]!);
    const recovery = RECOVERY.exec(secret);
    if (recovery) return this.useRecoveryCode(entity.id, recovery[1]!, recovery[2]!);
    return { ok: false, reason: `no ${digits}-digit code or recovery code at the end of the secret` };
  }

  /** Accepts a code of a step within the window that is later than the last step used (RFC 6238 section 5.2: no second use). */
  private async checkCode(id: string, key: Buffer, password: string, code: string): Promise<VerifyResult> {
    const { algorithm, digits, period, window } = this.settings;
    const now = Math.floor(this.now() / 1000 / period);
    let step: number | undefined;
    for (let s = now - window; s <= now + window; s++) if (sameCode(totpCode(key, s, digits, algorithm as Algorithm), code)) step = s;
    if (step === undefined) return { ok: false, reason: 'wrong or stale code' };
    const last = (await this.state.get(lastKey(id))) ?? null;
    // Compare-and-set: of two logins racing with one code, one wins.
    if ((last !== null && step <= Number(last)) || !(await this.state.compareAndSet(lastKey(id), last, String(step))))
      return { ok: false, reason: 'code already used' };
    return { ok: true, secret: password };
  }

  private async useRecoveryCode(id: string, password: string, code: string): Promise<VerifyResult> {
    const stored = (await this.state.get(recoveryKey(id))) ?? null;
    const hashes = stored === null ? [] : (JSON.parse(stored) as string[]);
    const hash = hashOf(code);
    if (!hashes.includes(hash)) return { ok: false, reason: 'wrong recovery code' };
    const left = hashes.filter((h) => h !== hash);
    if (!(await this.state.compareAndSet(recoveryKey(id), stored, JSON.stringify(left))))
      return { ok: false, reason: 'recovery code already used' };
    this.logger.warn({ entity: id, left: left.length }, 'recovery code used');
    return { ok: true, secret: password };
  }
}

if (isMainModule(import.meta.url)) serve(new Totp());
