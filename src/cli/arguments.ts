// Checks of the values a command line gives, done before anything is sent, so that a typo is a
// usage error (exit 2) naming the expected form instead of a refusal from the server.
import { InvalidArgumentError } from 'commander';
import { usageError } from './client.js';

/** An option parser for a whole number in [min, max]: `.option('--limit <n>', '…', wholeNumber(1, 1000))`. */
export function wholeNumber(min: number, max: number): (value: string) => number {
  return (value) => {
    const number = /^[0-9]+$/.test(value) ? Number(value) : Number.NaN;
    if (!(Number.isSafeInteger(number) && number >= min && number <= max))
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return number;
  };
}

/** The server URL without trailing slashes; a usage error unless it is an http(s) URL. */
export function serverUrl(value: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.host === '') {
    throw usageError(
      `--server (or KEYHOLD_SERVER) must be an http:// or https:// URL such as http://127.0.0.1:8470, not ${JSON.stringify(value)}`,
    );
  }
  return value.replace(/\/+$/, '');
}
