// Which code points an id, group name or key may hold. Names are shown in terminals, logs and
// file paths and compared byte for byte, so anything invisible or that changes how the text
// around it is drawn (bidi overrides, zero-width characters) would let two names look the same
// or a name look like another; surrogates, private-use and unassigned code points and U+FFFD
// (what a lossy decoder puts where the bytes were not UTF-8) have no agreed meaning at all.
// A refusal names the code point, so the caller can find it in text they cannot see.

/** Keys JavaScript objects treat specially: never a kv or untyped-metadata key, never a key in a request body. */
export const RESERVED_KEYS: readonly string[] = ['__proto__', 'constructor', 'prototype'];

/** The first code point that may not be in a name, as the regex sees it (\s: whitespace of any kind). */
const FORBIDDEN = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\s\uFFFD]/u;

/** Each class of forbidden code point and how a message describes it, checked in this order. */
const CLASSES: [RegExp, string][] = [
  [/\p{Cs}/u, 'a lone surrogate, which is not valid Unicode text'],
  [/\p{Cc}/u, 'a control character'],
  [/\p{Cf}/u, 'a format character (invisible, or changes the direction of the text around it)'],
  [/[\p{Zl}\p{Zp}]/u, 'a line or paragraph separator'],
  [/\s/u, 'whitespace'],
  [/\p{Co}/u, 'a private-use character'],
  [/\p{Cn}/u, 'an unassigned code point or a noncharacter'],
  [/\uFFFD/u, 'the replacement character, which stands for bytes that were not valid UTF-8'],
];

/** Names of the forbidden code points people meet in practice (Node has no Unicode name table). */
const NAMES: Record<number, string> = {
  0x0000: 'NULL',
  0x0009: 'CHARACTER TABULATION',
  0x000a: 'LINE FEED',
  0x000d: 'CARRIAGE RETURN',
  0x0020: 'SPACE',
  0x007f: 'DELETE',
  0x00a0: 'NO-BREAK SPACE',
  0x00ad: 'SOFT HYPHEN',
  0x061c: 'ARABIC LETTER MARK',
  0x180e: 'MONGOLIAN VOWEL SEPARATOR',
  0x200b: 'ZERO WIDTH SPACE',
  0x200c: 'ZERO WIDTH NON-JOINER',
  0x200d: 'ZERO WIDTH JOINER',
  0x200e: 'LEFT-TO-RIGHT MARK',
  0x200f: 'RIGHT-TO-LEFT MARK',
  0x2028: 'LINE SEPARATOR',
  0x2029: 'PARAGRAPH SEPARATOR',
  0x202a: 'LEFT-TO-RIGHT EMBEDDING',
  0x202b: 'RIGHT-TO-LEFT EMBEDDING',
  0x202c: 'POP DIRECTIONAL FORMATTING',
  0x202d: 'LEFT-TO-RIGHT OVERRIDE',
  0x202e: 'RIGHT-TO-LEFT OVERRIDE',
  0x2060: 'WORD JOINER',
  0x2066: 'LEFT-TO-RIGHT ISOLATE',
  0x2067: 'RIGHT-TO-LEFT ISOLATE',
  0x2068: 'FIRST STRONG ISOLATE',
  0x2069: 'POP DIRECTIONAL ISOLATE',
  0x3000: 'IDEOGRAPHIC SPACE',
  0xfeff: 'ZERO WIDTH NO-BREAK SPACE (byte order mark)',
  0xfffd: 'REPLACEMENT CHARACTER',
};

/** What the rule allows, for messages: said once, here. */
export const CODE_POINT_RULE =
  'no whitespace, and no control, format (invisible or bidi), private-use, unassigned or surrogate code points nor U+FFFD';

/** "U+202E RIGHT-TO-LEFT OVERRIDE", or "U+E000" for one without a name here. */
export function codePointLabel(char: string): string {
  const code = char.codePointAt(0)!;
  const hex = `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  return NAMES[code] === undefined ? hex : `${hex} ${NAMES[code]}`;
}

/** Why `value` may not be a name because of a code point it holds ("it contains U+202E …, a format character …"), or undefined. */
export function codePointProblem(value: string): string | undefined {
  const found = FORBIDDEN.exec(value)?.[0];
  if (found === undefined) return undefined;
  const kind = CLASSES.find(([pattern]) => pattern.test(found))![1];
  return `it contains ${codePointLabel(found)}, ${kind}`;
}

/** Why `key` may not be a key because it is reserved, or undefined. */
export function reservedKeyProblem(key: string): string | undefined {
  return RESERVED_KEYS.includes(key)
    ? `it is reserved (${RESERVED_KEYS.join(', ')} are never names or keys: JavaScript objects give them a special meaning)`
    : undefined;
}
