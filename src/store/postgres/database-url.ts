// The PostgreSQL connection URL as settings and messages handle it: checked at start for its
// form (so a typo is reported as a setting, not as a connection failure), and shown without its
// password wherever it is printed or logged.

/** The URL with any password replaced by ***: what messages and logs may show. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(an unparseable URL)';
  }
}

/** Throws an Error saying what is expected when `raw` is not a postgres:// or postgresql:// URL naming a host; never repeats a password. */
export function checkDatabaseUrl(raw: string): string {
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new Error('expected a URL like postgres://user:password@host:5432/database, got text that is not a URL');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:')
    throw new Error(`expected a postgres:// or postgresql:// URL, got one starting with ${parsed.protocol}//`);
  if (parsed.hostname === '' && !parsed.searchParams.has('host'))
    throw new Error(`expected a host in the URL (postgres://user:password@host:5432/database), got ${redactUrl(raw)}`);
  return raw;
}
