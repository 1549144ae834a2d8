// Why a post to the webhook's service got no answer, said so an operator can act on it: the name
// does not resolve, nothing listens, TLS failed, or no answer in time. fetch() itself only says
// "fetch failed"; the reason is in its cause's code.

/** A service that could not take the call at all: worth a retry in mode forward. */
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'UND_ERR_SOCKET']);

const WHAT_IT_MEANS: Record<string, string> = {
  ENOTFOUND: 'its host name does not resolve: check the url and the DNS',
  EAI_AGAIN: 'its host name could not be resolved now (DNS unavailable)',
  ECONNREFUSED: 'nothing accepts connections there: is the service running, on this host and port?',
  EHOSTUNREACH: 'the host cannot be reached',
  ENETUNREACH: 'the network cannot be reached',
};

/** An Error for a failure after which a retry may help (the service is down or starting). */
export function unavailable(message: string): Error {
  return Object.assign(new Error(message), { unavailable: true });
}

export function isUnavailable(err: unknown): boolean {
  return (err as { unavailable?: unknown }).unavailable === true;
}

/** The codes of a failed TLS handshake or certificate check (Node's and OpenSSL's). */
function isTlsCode(code: string): boolean {
  return /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH)/.test(code);
}

/** The Error to throw for `err`, thrown by fetch(url) with a `timeout` ms signal; isUnavailable() when a retry may help. */
export function failureOf(err: unknown, url: string, timeout: number): Error {
  if (err instanceof Error && err.name === 'TimeoutError') return new Error(`${url} did not answer within ${timeout} ms`);
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code;
  if (code !== undefined && isTlsCode(code)) return new Error(`${url}: the TLS handshake failed (${code}): ${cause?.message ?? ''}`);
  if (code !== undefined && UNAVAILABLE_CODES.has(code))
    return unavailable(`${url} is unavailable (${code})${WHAT_IT_MEANS[code] ? `: ${WHAT_IT_MEANS[code]}` : ''}`);
  if (code !== undefined && WHAT_IT_MEANS[code]) return new Error(`${url} could not be called (${code}): ${WHAT_IT_MEANS[code]}`);
  return new Error(`${url} could not be called: ${(err as Error).message}${cause?.message ? ` (${cause.message})` : ''}`);
}
