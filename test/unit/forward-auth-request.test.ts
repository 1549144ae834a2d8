// What forward authentication reads from a sub-request without I/O: the client address behind
// trusted proxies (X-Forwarded-For walked from the right, X-Real-IP, IPv4-mapped peers, CIDR
// blocks, malformed hops), the Authorization header, and access conditions against a profile.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseProxyEntry, TrustedProxies } from '../../src/api/client-address.js';
import { describeRule, parseAuthorization, unmetCondition } from '../../src/api/forward-auth-request.js';
import { isKeyholdError } from '../../src/errors.js';
import type { AccessProfile } from '../../src/identity/access-profile.js';

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

describe('TrustedProxies.clientAddress', () => {
  const proxies = new TrustedProxies({ trustedProxies: ['10.0.0.0/8', '192.0.2.7', 'fd00::/8'], clientAddressHeader: 'x-forwarded-for' });

  it('believes the forwarded address only from a trusted peer', () => {
    assert.equal(proxies.clientAddress('198.51.100.1', { 'x-forwarded-for': '203.0.113.9' }), '198.51.100.1');
    assert.equal(proxies.clientAddress('192.0.2.7', { 'x-forwarded-for': '203.0.113.9' }), '203.0.113.9');
    assert.equal(proxies.clientAddress('10.1.2.3', { 'x-forwarded-for': '203.0.113.9' }), '203.0.113.9', 'inside a CIDR block');
    assert.equal(proxies.clientAddress('::ffff:192.0.2.7', { 'x-forwarded-for': '203.0.113.9' }), '203.0.113.9', 'an IPv4-mapped peer');
    assert.equal(proxies.clientAddress('fd12::1', { 'x-forwarded-for': '2001:db8::5' }), '2001:db8::5');
  });

  it('walks X-Forwarded-For from the right through trusted hops; what the client wrote to the left is not believed', () => {
    assert.equal(proxies.clientAddress('192.0.2.7', { 'x-forwarded-for': '1.1.1.1, 203.0.113.9, 10.9.9.9' }), '203.0.113.9');
    assert.equal(proxies.clientAddress('192.0.2.7', { 'x-forwarded-for': '10.1.1.1, 10.2.2.2' }), '10.1.1.1', 'all trusted: the leftmost');
  });

  it('stops at a malformed hop, at the proxy that wrote it; no header: the peer', () => {
    assert.equal(proxies.clientAddress('192.0.2.7', { 'x-forwarded-for': '203.0.113.9, not-an-address' }), '192.0.2.7');
    assert.equal(proxies.clientAddress('192.0.2.7', { 'x-forwarded-for': 'garbage, 10.5.5.5' }), '10.5.5.5');
    assert.equal(proxies.clientAddress('192.0.2.7', { 'x-forwarded-for': '203.0.113.9:4711' }), '192.0.2.7', 'a port is no address');
    assert.equal(proxies.clientAddress('192.0.2.7', {}), '192.0.2.7');
  });

  it('reads X-Real-IP instead when told, and ignores X-Forwarded-For then', () => {
    const realIp = new TrustedProxies({ trustedProxies: ['127.0.0.1'], clientAddressHeader: 'x-real-ip' });
    assert.equal(realIp.clientAddress('127.0.0.1', { 'x-real-ip': '203.0.113.9', 'x-forwarded-for': '198.51.100.1' }), '203.0.113.9');
    assert.equal(realIp.clientAddress('127.0.0.2', { 'x-real-ip': '203.0.113.9' }), '127.0.0.2');
  });

  it('trusts nobody by default', () => {
    assert.equal(
      new TrustedProxies({ trustedProxies: [], clientAddressHeader: 'x-forwarded-for' }).clientAddress('127.0.0.1', {
        'x-forwarded-for': '203.0.113.9',
      }),
      '127.0.0.1',
    );
  });

  it('refuses entries that are not an address or a CIDR block, saying so', () => {
    for (const bad of ['localhost', '10.0.0.0/33', '::1/129', '10.0.0.0/8/8', '10.0.0/8', ''])
      assert.throws(() => parseProxyEntry(bad), /not an IP address or a CIDR block|prefix length/, bad);
    assert.deepEqual(parseProxyEntry('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
  });
});

describe('parseAuthorization', () => {
  it('reads Basic id:secret as UTF-8, the secret may hold colons', () => {
    assert.deepEqual(parseAuthorization(`Basic ${b64('alice:se:cr:et')}`), { scheme: 'basic', id: 'alice', secret: 'se:cr:et' });
    assert.deepEqual(parseAuthorization(`basic  ${b64('jürgen:pässwörd')}`), { scheme: 'basic', id: 'jürgen', secret: 'pässwörd' });
  });

  it('reads a Bearer token', () => {
    assert.deepEqual(parseAuthorization('Bearer a.b.c'), { scheme: 'bearer', token: 'a.b.c' });
  });

  it('refuses anything else with KH_ERR_UNAUTHENTICATED saying what is wrong', () => {
    const cases: [string | undefined, RegExp][] = [
      [undefined, /no credentials/],
      ['   ', /no credentials/],
      ['Digest username="a"', /not Basic or Bearer/],
      ['Bearer', /not Basic or Bearer/],
      ['Basic', /not base64/],
      ['Basic !!!', /not base64/],
      [`Basic ${Buffer.from([0x61, 0x3a, 0xff, 0xfe]).toString('base64')}`, /not UTF-8/],
      [`Basic ${b64('alice')}`, /id and a secret/],
      [`Basic ${b64(':secret')}`, /id and a secret/],
      [`Basic ${b64('alice:')}`, /id and a secret/],
    ];
    for (const [header, problem] of cases) {
      assert.throws(
        () => parseAuthorization(header),
        (err: unknown) => isKeyholdError(err) && err.code === 'KH_ERR_UNAUTHENTICATED' && problem.test(err.message),
        String(header),
      );
    }
  });
});

describe('access conditions', () => {
  const profile = (groups: string[], capabilities: AccessProfile['capabilities']): AccessProfile => ({
    id: 'alice',
    generation: 'g',
    locked: false,
    groups,
    capabilities,
  });

  it('needs one of the groups and every capability; GLOBAL_ROOT holds every capability', () => {
    const rule = describeRule({ groups: ['wiki', 'admins'], capabilities: ['LOCK_ENTITY', 'UNLOCK_ENTITY'] });
    assert.equal(unmetCondition(rule, profile(['admins'], ['LOCK_ENTITY', 'UNLOCK_ENTITY'])), undefined);
    assert.equal(unmetCondition(rule, profile(['staff'], ['LOCK_ENTITY', 'UNLOCK_ENTITY'])), 'in none of the groups wiki, admins');
    assert.equal(unmetCondition(rule, profile(['wiki'], ['LOCK_ENTITY'])), 'lacks the capability UNLOCK_ENTITY');
    assert.equal(unmetCondition(rule, profile(['wiki'], ['GLOBAL_ROOT'])), undefined);
    assert.equal(unmetCondition(describeRule({ groups: [], capabilities: [] }), profile([], [])), undefined, 'an empty rule: any entity');
  });
});
