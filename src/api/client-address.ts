// The client's address as every route sees it (the API, its logins and forward authentication: one
// rule, applied once per request by request-origin.ts): the TCP peer, unless that peer is one of
// `api.trustedProxies`; then the address the proxy forwarded (X-Forwarded-For walked from the
// right through trusted hops, or X-Real-IP), so that the login throttle, hooks and the logs count
// the end user and not the proxy, and nobody else can choose the address they are counted under.
// node:net's BlockList does the CIDR matching. The parsers check the `api:` settings' raw values.
import type { IncomingHttpHeaders } from 'node:http';
import { BlockList, isIP } from 'node:net';

export const CLIENT_ADDRESS_HEADERS = ['x-forwarded-for', 'x-real-ip'] as const;
export type ClientAddressHeader = (typeof CLIENT_ADDRESS_HEADERS)[number];

type Family = 'ipv4' | 'ipv6';

/** The `api:` settings this reads (src/config.ts, docs/configuration.md). */
export interface ClientAddressSettings {
  /** Peers (addresses or CIDR blocks) whose forwarded client address is believed; empty: the TCP peer is the client. */
  trustedProxies: string[];
  /** The header those proxies put the client's address in. */
  clientAddressHeader: ClientAddressHeader;
}

/** An address without IPv6's IPv4-mapped prefix (`::ffff:127.0.0.1` → `127.0.0.1`), as a dual-stack socket reports IPv4 peers. */
export function plainAddress(address: string): string {
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address) ? address.slice(7) : address;
}

function familyOf(address: string): Family | undefined {
  const version = isIP(address);
  return version === 4 ? 'ipv4' : version === 6 ? 'ipv6' : undefined;
}

/** One trusted proxy as configured: an address (`10.0.0.7`, `::1`) or a CIDR block (`10.0.0.0/8`, `fd00::/8`); throws an Error saying what is wrong. */
export function parseProxyEntry(entry: string): { address: string; prefix: number | undefined; family: Family } {
  const [written, prefixText, extra] = entry.trim().split('/');
  const address = plainAddress(written ?? '');
  const family = familyOf(address);
  if (!family || extra !== undefined)
    throw new Error(`${JSON.stringify(entry)} is not an IP address or a CIDR block (e.g. 127.0.0.1, ::1, 10.0.0.0/8)`);
  if (prefixText === undefined) return { address, prefix: undefined, family };
  const max = family === 'ipv4' ? 32 : 128;
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= max))
    throw new Error(`${JSON.stringify(entry)}: the prefix length must be a whole number from 0 to ${max}`);
  return { address, prefix, family };
}

function describe(raw: unknown): string {
  return raw === null ? 'null' : Array.isArray(raw) ? 'a list' : typeof raw === 'object' ? 'a mapping' : JSON.stringify(raw);
}

/** A list of addresses and CIDR blocks; from the environment, separated by commas or spaces. */
export function parseTrustedProxies(raw: unknown): string[] {
  const list = typeof raw === 'string' ? raw.split(/[\s,]+/).filter(Boolean) : raw;
  if (!Array.isArray(list) || !list.every((e) => typeof e === 'string'))
    throw new Error(`expected a list of IP addresses or CIDR blocks, got ${describe(raw)}`);
  for (const entry of list) parseProxyEntry(entry);
  return list;
}

export function parseClientAddressHeader(raw: unknown): ClientAddressHeader {
  const value = typeof raw === 'string' ? raw.toLowerCase() : raw;
  if (!(CLIENT_ADDRESS_HEADERS as readonly unknown[]).includes(value))
    throw new Error(`expected one of ${CLIENT_ADDRESS_HEADERS.join(', ')}, got ${describe(raw)}`);
  return value as ClientAddressHeader;
}

export class TrustedProxies {
  private readonly list = new BlockList();
  private readonly empty: boolean;

  private readonly header: ClientAddressHeader;

  constructor({ trustedProxies: entries, clientAddressHeader }: ClientAddressSettings) {
    this.header = clientAddressHeader;
    for (const entry of entries) {
      const { address, prefix, family } = parseProxyEntry(entry);
      if (prefix === undefined) this.list.addAddress(address, family);
      else this.list.addSubnet(address, prefix, family);
    }
    this.empty = entries.length === 0;
  }

  trusts(address: string): boolean {
    const family = familyOf(address);
    return family !== undefined && this.list.check(address, family);
  }

  /**
   * The end user's address for a request from `peer`. From an untrusted peer, the peer itself
   * (its headers are the client's own words). From a trusted one, X-Real-IP, or X-Forwarded-For
   * read from the right: each hop was written by the proxy after it, so the first untrusted one
   * is the client; a malformed hop ends the walk at the proxy that wrote it.
   */
  clientAddress(peer: string, headers: IncomingHttpHeaders): string {
    let client = plainAddress(peer);
    if (this.empty || !this.trusts(client)) return client;
    const value = headers[this.header];
    const hops = typeof value === 'string' ? value.split(',') : [];
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = plainAddress(hops[i]!.trim());
      if (familyOf(hop) === undefined) return client;
      client = hop;
      if (!this.trusts(hop)) return client;
    }
    return client;
  }
}
