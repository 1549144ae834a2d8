#!/usr/bin/env node
// password-policy: refuses a new secret that is too short, too uniform, built from the entity's
// own id or names, or a well-known password; the veto says everything to fix at once.
import { ConfiguredPlugin, isMainModule, serve, setting, Veto, type Entity, type JsonObject } from 'keyhold-plugin-sdk';

const schema = {
  minLength: setting.integer({ min: 1, max: 1024, default: 12 }),
  /** How many of the four classes (lower case, upper case, digits, symbols) must appear. */
  minClasses: setting.integer({ min: 0, max: 4, default: 3 }),
  /** Site words no secret may contain, e.g. the organisation's name (case-insensitive). */
  forbiddenWords: setting.stringList({ default: [] }),
};

/** Passwords at the top of every breach list; compared case-insensitively, also with trailing digits and symbols dropped. */
const COMMON_PASSWORDS = new Set([
  'password',
  'passw0rd',
  'p@ssw0rd',
  'p@ssword',
  'qwerty',
  'qwertyuiop',
  'asdfghjkl',
  'azerty',
  'letmein',
  'welcome',
  'iloveyou',
  'admin',
  'administrator',
  'root',
  'changeme',
  'secret',
  'default',
  'login',
  'master',
  'dragon',
  'monkey',
  'football',
  'baseball',
  'superman',
  'batman',
  'trustno1',
  'sunshine',
  'princess',
  'shadow',
  'starwars',
  'whatever',
  'abc',
  'abcdef',
  'abcd1234',
  'qazwsx',
  '1q2w3e4r',
  'zaq12wsx',
  'summer',
  'winter',
  'spring',
  'autumn',
  '123456',
  '12345678',
  '123456789',
  '1234567890',
  '111111',
  '000000',
  '123123',
  '654321',
  '666666',
  '121212',
]);

const CLASSES: readonly [string, RegExp][] = [
  ['lower case', /\p{Ll}/u],
  ['upper case', /\p{Lu}/u],
  ['digits', /\p{Nd}/u],
  ['symbols', /[^\p{L}\p{Nd}]/u],
];

/** The parts of the entity's id and names (at least 3 characters) a secret must not contain. */
function personalWords(entity: Entity): string[] {
  const names = [entity.id, entity.meta.displayName, entity.meta.legalName];
  return names.flatMap((n) => n.toLowerCase().split(/[^\p{L}\p{Nd}]+/u)).filter((w) => w.length >= 3);
}

export class PasswordPolicy extends ConfiguredPlugin(schema) {
  override readonly name = 'password-policy';
  override readonly version = '1.0.0';
  /** Everything wrong with `secret` for `entity`, each as an instruction; empty when it passes. */
  problems(secret: string, entity: Entity): string[] {
    const { minLength, minClasses, forbiddenWords } = this.settings;
    const found: string[] = [];
    const length = [...secret].length;
    if (length < minLength) found.push(`use at least ${minLength} characters (this one has ${length})`);
    const present = CLASSES.filter(([, re]) => re.test(secret)).length;
    if (present < minClasses) found.push(`mix at least ${minClasses} of: ${CLASSES.map(([n]) => n).join(', ')} (this one has ${present})`);
    const lower = secret.toLowerCase();
    if (personalWords(entity).some((w) => lower.includes(w))) found.push('do not use your id or your name');
    const word = forbiddenWords.find((w) => lower.includes(w.toLowerCase()));
    if (word !== undefined) found.push(`do not use "${word}"`);
    if (COMMON_PASSWORDS.has(lower) || COMMON_PASSWORDS.has(lower.replace(/[^\p{L}]+$/u, ''))) found.push('do not use a common password');
    return found;
  }

  override preSecretChange(entity: Entity, request: JsonObject): Entity {
    const secret = request.secret;
    if (typeof secret !== 'string') throw new Error('preSecretChange was called without request.secret');
    const found = this.problems(secret, entity);
    if (found.length > 0) throw new Veto(`the new secret is too weak: ${found.join('; ')}`);
    return entity;
  }
}

if (isMainModule(import.meta.url)) serve(new PasswordPolicy());
