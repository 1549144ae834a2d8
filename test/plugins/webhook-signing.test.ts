// The webhook's Keyhold-Signature, checked as a receiver in another language would check it: with
// `openssl dgst -sha256 -hmac KEY` over "<t>.<the bytes received>", the key looked up by kid.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { JsonObject } from 'keyhold-plugin-sdk';
import { fakeEntity, PluginHarness } from 'keyhold-plugin-sdk/testing';
import { Webhook } from '../../plugins/src/webhook.js';
import { HttpService, reply, type ReceivedRequest } from '../support/http-service.js';

const OPENSSL = spawnSync('openssl', ['version']).status === 0;
if (!OPENSSL)
  process.stderr.write('SKIPPING the webhook signature tests: openssl is not installed, so no standard tool can check the HMAC\n');

/** The hex HMAC-SHA256 of `data` with `key`, computed by the openssl command line tool. */
function opensslHmac(key: string, data: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', ['dgst', '-sha256', '-hmac', key], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out.trim().split('= ').at(-1)!) : reject(new Error(`openssl exited with ${code}`))));
    child.stdin.end(data);
  });
}

/** A receiver's check, as plugins/README.md describes it: the header parsed, the key found by kid, the HMAC recomputed over "<t>.<raw>". */
async function receiverAccepts(request: ReceivedRequest, keys: Record<string, string>): Promise<boolean> {
  const header = /^t=(\d+),kid=([A-Za-z0-9._-]+),v1=([0-9a-f]{64})$/.exec(String(request.headers['keyhold-signature']));
  if (!header) return false;
  const [, t, kid, v1] = header;
  const key = keys[kid!];
  if (key === undefined) return false;
  return (await opensslHmac(key, Buffer.concat([Buffer.from(`${t}.`), request.raw]))) === v1;
}

const OLD_KEY = 'old-key-0123456789abcdef0123456789abcdef';
const NEW_KEY = 'new-key-fedcba9876543210fedcba9876543210';

describe('webhook signatures', { skip: OPENSSL ? false : 'openssl is not installed' }, () => {
  const service = new HttpService();
  let url: string;
  let dir: string;
  before(async () => {
    url = await service.listen();
    dir = mkdtempSync(join(tmpdir(), 'keyhold-webhook-keys-'));
  });
  after(async () => {
    await service.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const start = (config: JsonObject) =>
    PluginHarness.start(new Webhook(), { config: { url, hooks: ['preEntityUpdate'], timeout: '10s', ...config } });
  // Not ASCII, so that a signature over characters instead of the bytes sent would not verify.
  const update = { patch: { displayName: 'Zoë Ångström 🔑' } };
  const alice = fakeEntity({ id: 'alice' });

  it('signs the exact bytes posted with the one key, verifiable with openssl; a tampered body fails', async () => {
    service.handler = (_body, res) => reply(res, 204);
    const h = await start({ signingKeys: [{ id: 'k1', secret: OLD_KEY }] });
    await h.call('preEntityUpdate', alice, update);
    const sent = service.requests.at(-1)!;
    const t = Math.floor(h.clock.now() / 1000);
    assert.match(String(sent.headers['keyhold-signature']), new RegExp(`^t=${t},kid=k1,v1=[0-9a-f]{64}$`));
    assert.equal(sent.headers['keyhold-event'], 'preEntityUpdate');
    assert.equal(await receiverAccepts(sent, { k1: OLD_KEY }), true);
    const tampered = Buffer.from(sent.raw.toString('utf8').replace('Zoë', 'Zoe'), 'utf8');
    assert.equal(await receiverAccepts({ ...sent, raw: tampered }, { k1: OLD_KEY }), false);
    assert.equal(await receiverAccepts(sent, { k1: NEW_KEY }), false);
  });

  it('signs with the key marked current; a receiver holding both keys during the rotation accepts either kid', async () => {
    service.handler = (_body, res) => reply(res, 204);
    const receiverKeys = { old: OLD_KEY, new: NEW_KEY };
    const before = await start({
      signingKeys: [
        { id: 'old', secret: OLD_KEY, current: true },
        { id: 'new', secret: NEW_KEY },
      ],
    });
    await before.call('preEntityUpdate', alice, update);
    const signedOld = service.requests.at(-1)!;
    assert.match(String(signedOld.headers['keyhold-signature']), /,kid=old,/);
    const afterSwitch = await start({
      signingKeys: [
        { id: 'old', secret: OLD_KEY },
        { id: 'new', secret: NEW_KEY, current: true },
      ],
    });
    await afterSwitch.call('preEntityUpdate', alice, update);
    const signedNew = service.requests.at(-1)!;
    assert.match(String(signedNew.headers['keyhold-signature']), /,kid=new,/);
    assert.equal(await receiverAccepts(signedOld, receiverKeys), true);
    assert.equal(await receiverAccepts(signedNew, receiverKeys), true);
    // Once the old key is retired, what it signed is refused.
    assert.equal(await receiverAccepts(signedOld, { new: NEW_KEY }), false);
  });

  it('signs committed events in mode notify, the key read from a file of mode 0600 (one trailing newline dropped)', async () => {
    service.handler = (_body, res) => reply(res, 204);
    const keyFile = join(dir, 'webhook.key');
    writeFileSync(keyFile, `${NEW_KEY}\n`, { mode: 0o600 });
    const h = await start({ mode: 'notify', hooks: ['committedEntityCreate'], signingKeys: [{ id: 'file', keyFile }] });
    await h.deliver('committedEntityCreate', { after: alice });
    const sent = service.requests.at(-1)!;
    assert.equal(sent.headers['keyhold-event'], 'committedEntityCreate');
    assert.equal(await receiverAccepts(sent, { file: NEW_KEY }), true);
  });

  it('sends no signature header without keys', async () => {
    service.handler = (_body, res) => reply(res, 204);
    const h = await start({});
    await h.call('preEntityUpdate', alice, update);
    assert.equal(service.requests.at(-1)!.headers['keyhold-signature'], undefined);
  });

  it('refuses unusable keys at initialize, naming the key and what to do, never the secret', async () => {
    const readable = join(dir, 'readable.key');
    writeFileSync(readable, OLD_KEY);
    chmodSync(readable, 0o640);
    const cases: [JsonObject[], RegExp][] = [
      [
        [{ id: 'a', secret: 'short' }],
        /config "signingKeys\[0\]\.secret": the key has fewer than 32 characters: make one with openssl rand -hex 32/,
      ],
      [
        [
          { id: 'a', secret: OLD_KEY },
          { id: 'b', secret: NEW_KEY },
        ],
        /config "signingKeys": mark exactly one key current: true \(the one to sign with\), found 0/,
      ],
      [
        [
          { id: 'a', secret: OLD_KEY, current: true },
          { id: 'b', secret: NEW_KEY, current: true },
        ],
        /found 2/,
      ],
      [
        [
          { id: 'a', secret: OLD_KEY, current: true },
          { id: 'a', secret: NEW_KEY },
        ],
        /config "signingKeys\[1\]\.id": a is the id of an earlier key too/,
      ],
      [[{ id: 'a b', secret: OLD_KEY }], /config "signingKeys\[0\]\.id": expected 1 to 64 letters/],
      [[{ id: 'a', secret: OLD_KEY, keyFile: readable }], /config "signingKeys\[0\]": give exactly one of secret .* and keyFile/],
      [[{ id: 'a', secret: OLD_KEY, curent: true }], /config "signingKeys\[0\]\.curent": unknown field/],
      [
        [{ id: 'a', keyFile: readable }],
        new RegExp(
          `signingKeys\\[0\\]\\.keyFile": ${readable} may be read or written by its group or others \\(mode 0640\\): run chmod 600`,
        ),
      ],
      [[{ id: 'a', keyFile: join(dir, 'missing.key') }], /signingKeys\[0\]\.keyFile": cannot read .*missing\.key: ENOENT/],
      // The next key is checked before it is switched to.
      [
        [
          { id: 'a', secret: OLD_KEY, current: true },
          { id: 'b', keyFile: readable },
        ],
        /signingKeys\[1\]\.keyFile": .* \(mode 0640\)/,
      ],
    ];
    for (const [signingKeys, expected] of cases) {
      await assert.rejects(start({ signingKeys }), (e: Error) => {
        assert.match(e.message, expected);
        assert.ok(!e.message.includes(OLD_KEY) && !e.message.includes(NEW_KEY), e.message);
        return true;
      });
    }
  });

  it('never logs a key', async () => {
    let calls = 0;
    service.handler = (_body, res) => (++calls < 2 ? reply(res, 503, { message: 'warming up' }) : reply(res, 204));
    const h = await start({ signingKeys: [{ id: 'k1', secret: OLD_KEY }], retries: 1, retryBaseInterval: '1ms' });
    await h.call('preEntityUpdate', alice, update);
    assert.equal(h.logs.length, 1);
    assert.ok(!JSON.stringify(h.logs).includes(OLD_KEY));
  });
});
