// What a request must be before any route sees it, beyond each route's JSON schema: a body that
// is UTF-8 JSON no deeper than MAX_BODY_DEPTH, with well-formed text and no reserved keys; a query
// string whose percent-encoding is UTF-8 and that names only the parameters the route declares.
// Every check walks with an explicit stack, so no input can exhaust the call stack, and every
// refusal is KH_ERR_INVALID_INPUT saying where (`details.in`, `details.problems`).
import { isUtf8 } from 'node:buffer';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isWellFormedText } from 'keyhold-plugin-sdk';
import { KeyholdError } from '../errors.js';
import { MAX_NAME_LENGTH } from '../identity/identity.js';
import { reservedKeyProblem } from '../identity/name-rules.js';

/** Deepest nesting of objects and arrays a body may have: every real body is 3 levels or fewer. */
export const MAX_BODY_DEPTH = 32;

/** Longest path parameter, in UTF-16 units: a name of MAX_NAME_LENGTH code points, each possibly a surrogate pair. */
export const MAX_PARAM_LENGTH = 2 * MAX_NAME_LENGTH;

/** The query string a route without its own querystring schema accepts: none at all. */
const NO_QUERY = { type: 'object', properties: {}, additionalProperties: false } as const;

type Where = 'body' | 'querystring';

function refused(where: Where, path: string, problem: string): KeyholdError {
  return new KeyholdError('KH_ERR_INVALID_INPUT', `${where}${path ? ` ${path}` : ''}: ${problem}`, {
    in: where,
    problems: [{ path, problem }],
  });
}

/** The byte offset of the first byte sequence that is not UTF-8 (`bytes` is known to have one). */
function firstInvalidByte(bytes: Buffer): number {
  const lossy = bytes.toString('utf8');
  for (let at = lossy.indexOf('\uFFFD'); at !== -1; at = lossy.indexOf('\uFFFD', at + 1)) {
    const offset = Buffer.byteLength(lossy.slice(0, at));
    // A U+FFFD that was in the body itself is three valid bytes; any other stands for invalid ones.
    if (!(bytes[offset] === 0xef && bytes[offset + 1] === 0xbf && bytes[offset + 2] === 0xbd)) return offset;
  }
  return 0;
}

interface Pending {
  value: unknown;
  path: string;
  depth: number;
}

/** The first problem in a parsed body, in document order: too deep, text that is not well-formed, a reserved key. */
export function bodyProblem(body: unknown): { path: string; problem: string } | undefined {
  const stack: Pending[] = [{ value: body, path: '', depth: 0 }];
  while (stack.length > 0) {
    const { value, path, depth } = stack.pop()!;
    if (typeof value === 'string') {
      if (!isWellFormedText(value)) return { path, problem: 'not valid Unicode text (it has a lone surrogate)' };
      continue;
    }
    if (value === null || typeof value !== 'object') continue;
    if (depth === MAX_BODY_DEPTH)
      return { path, problem: `nested more than ${MAX_BODY_DEPTH} levels deep (objects and arrays), the limit` };
    const children: Pending[] = [];
    for (const [key, item] of Object.entries(value)) {
      const here = path ? `${path}.${key}` : key;
      if (!isWellFormedText(key)) return { path: here, problem: 'the key is not valid Unicode text (it has a lone surrogate)' };
      const reserved = reservedKeyProblem(key);
      if (reserved) return { path: here, problem: `the key ${JSON.stringify(key)} ${reserved.slice('it '.length)}` };
      children.push({ value: item, path: here, depth: depth + 1 });
    }
    stack.push(...children.reverse());
  }
  return undefined;
}

/** JSON is UTF-8 (RFC 8259): a content type that declares another charset is refused, not read as UTF-8 regardless. */
function checkCharset(contentType: string | undefined): void {
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(contentType ?? '')?.[1];
  if (charset !== undefined && charset.toLowerCase() !== 'utf-8')
    throw refused('body', '', `the content type says charset=${charset}; JSON bodies are UTF-8: send application/json (or charset=utf-8)`);
}

/** The JSON body parser: strict UTF-8 (never a silent U+FFFD), then JSON, then bodyProblem. */
export function parseJsonBody(bytes: Buffer): unknown {
  if (bytes.length === 0) throw refused('body', '', 'empty; send a JSON object, or no content-type when there is no body');
  if (!isUtf8(bytes)) throw refused('body', '', `not valid UTF-8 (at byte ${firstInvalidByte(bytes)}); send JSON encoded as UTF-8`);
  let body: unknown;
  try {
    body = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw refused('body', '', `not valid JSON (${(err as Error).message})`);
  }
  const found = bodyProblem(body);
  if (found) throw refused('body', found.path, found.problem);
  return body;
}

/** Decodes one part of a query string as the query parser does, or undefined when it is not percent-encoded UTF-8. */
function decodeQueryPart(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/**
 * Refuses a query string with a part that is not percent-encoded UTF-8. The query parser would
 * keep such a part as its raw text, so "%FF" would silently reach the route as the 3 characters.
 */
export function checkQueryEncoding(request: FastifyRequest): void {
  const start = request.url.indexOf('?');
  if (start === -1) return;
  for (const pair of request.url.slice(start + 1).split('&')) {
    const split = pair.indexOf('=');
    const [rawName, rawValue] = split === -1 ? [pair, ''] : [pair.slice(0, split), pair.slice(split + 1)];
    const name = decodeQueryPart(rawName);
    if (name === undefined)
      throw refused('querystring', rawName, 'the parameter name is not percent-encoded UTF-8; encode it with encodeURIComponent');
    if (decodeQueryPart(rawValue) === undefined)
      throw refused(
        'querystring',
        name,
        `the value ${JSON.stringify(rawValue.slice(0, 40))} is not percent-encoded UTF-8; encode it with encodeURIComponent`,
      );
  }
}

function isForeign(config: unknown): boolean {
  return (config as { foreignQuery?: boolean } | undefined)?.foreignQuery === true;
}

/** Installs the body parser and the query checks; call before any route is added. */
export function installRequestInput(app: FastifyInstance): void {
  // JSON is the only body keyhold reads: without the text/plain parser any other type is refused.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, async (request: FastifyRequest, body: Buffer) => {
    checkCharset(request.headers['content-type']);
    return parseJsonBody(body);
  });
  // Unknown query parameters are refused like unknown body fields, also on routes that take none.
  // A route marked `config: { foreignQuery: true }` carries someone else's query (forward-auth's
  // Envoy form: the end user's): it is neither checked nor refused there.
  app.addHook('onRoute', (route) => {
    if (route.schema?.querystring === undefined && !isForeign(route.config)) route.schema = { ...route.schema, querystring: NO_QUERY };
  });
  app.addHook('preValidation', async (request) => {
    if (!isForeign(request.routeOptions.config)) checkQueryEncoding(request);
  });
}
