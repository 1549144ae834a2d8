// Token signing keys in the store: rotation keeps the previous key's tokens valid for one token
// lifetime and no longer; a kid no key of the store has is refused (and costs no store read while
// nothing changed); another server on the same database sees a rotation; keys survive a restart;
// an install's token-signing-key.pem is imported on the upgrade, so the tokens it signed stay valid.
// On both stores; two stores opened on one database play two servers.
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { decodeProtectedHeader, importPKCS8, SignJWT } from 'jose';
import { pino } from 'pino';
import { ISSUED_AT_SKEW_SECONDS, LEGACY_KEY_FILE } from '../../src/api/key-ring.js';
import { TokenService } from '../../src/api/tokens.js';
import { KeyholdError } from '../../src/errors.js';
import type { Store } from '../../src/store/store.js';
import { capturingLogger, scratchDir } from '../support/keyhold.js';
import { forEachStore, newStoreSite, type StoreKind, type StoreSite } from '../support/stores.js';

const TTL_MS = 600_000;
const silent = pino({ level: 'silent' });
const stores: Store[] = [];
const sites: StoreSite[] = [];
after(async () => {
  for (const store of stores.splice(0)) await store.close();
  for (const site of sites.splice(0)) site.remove();
});

/** A server's data directory and the database its stores open (every server of one test shares it). */
interface Server {
  dataDir: string;
  openStore(): Promise<Store>;
}

async function newServer(kind: StoreKind): Promise<Server> {
  const site = await newStoreSite(kind);
  sites.push(site);
  return {
    dataDir: scratchDir('keys'),
    openStore: async () => {
      const store = await site.open();
      stores.push(store);
      return store;
    },
  };
}

function kidOf(token: string): string | undefined {
  return decodeProtectedHeader(token).kid;
}

function newPem(): string {
  return generateKeyPairSync('ed25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  }).privateKey;
}

/** A token as this server issues them, signed with `pem` and carrying `kid` (none when undefined). */
async function signWith(pem: string, kid: string | undefined): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ caps: [], gen: 'g1' })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', ...(kid !== undefined && { kid }) })
    .setIssuer('keyhold')
    .setAudience('keyhold')
    .setSubject('alice')
    .setJti(randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + 60)
    .sign(await importPKCS8(pem, 'EdDSA'));
}

async function refused(tokens: TokenService, token: string): Promise<void> {
  await assert.rejects(tokens.verify(token), (err) => err instanceof KeyholdError && err.code === 'KH_ERR_UNAUTHENTICATED');
}

forEachStore((kind) => {
  describe('token signing keys', () => {
    it('rotation: new tokens carry the new kid, tokens of the previous key stay valid, the list shows both without private material', async () => {
      const { dataDir, openStore } = await newServer(kind);
      const tokens = await TokenService.open(await openStore(), TTL_MS, dataDir, silent);
      const before = (await tokens.issue('alice', [], 'g1')).token;
      const rotated = await tokens.rotateKeys();
      const afterRotation = (await tokens.issue('alice', [], 'g1')).token;
      assert.equal(kidOf(afterRotation), rotated.kid);
      assert.notEqual(kidOf(before), rotated.kid);
      assert.equal((await tokens.verify(before)).sub, 'alice');
      assert.equal((await tokens.verify(afterRotation)).sub, 'alice');
      const list = await tokens.listKeys();
      assert.deepEqual(
        list.map((k) => [k.kid, k.state]),
        [
          [rotated.kid, 'current'],
          [kidOf(before), 'retired'],
        ],
      );
      assert.ok(!JSON.stringify(list).includes('PRIVATE'));
      assert.equal(Date.parse(list[1]!.acceptedUntil!) - Date.parse(list[1]!.retiredAt!), TTL_MS + ISSUED_AT_SKEW_SECONDS * 1000);
      assert.equal((await tokens.publicJwks()).length, 2);
    });

    it('refuses a token of a key retired longer than one token lifetime ago', async () => {
      const { dataDir, openStore } = await newServer(kind);
      const store = await openStore();
      const first = await TokenService.open(store, TTL_MS, dataDir, silent);
      const old = (await first.issue('alice', [], 'g1')).token;
      // A rotation made (through another server) long enough ago that the old key's grace is over.
      const retiredAt = Date.now() - TTL_MS - ISSUED_AT_SKEW_SECONDS * 1000 - 1000;
      await store.keys.rotate({ kid: 'rotated-long-ago', privateKeyPem: newPem(), createdAt: retiredAt, origin: 'generated' }, 0);
      const later = await TokenService.open(store, TTL_MS, dataDir, silent);
      await refused(later, old);
      assert.equal((await later.listKeys()).find((k) => k.kid === kidOf(old))?.state, 'expired');
      assert.deepEqual(
        (await later.publicJwks()).map((k) => k.kid),
        ['rotated-long-ago'],
      );
    });

    it('refuses a forged kid, and a known kid on a token another key signed, without reading the keys again while nothing changed', async () => {
      const { dataDir, openStore } = await newServer(kind);
      const store = await openStore();
      let reads = 0;
      const counted: Pick<Store, 'keys' | 'changeCounter'> = {
        keys: {
          ...store.keys,
          all: () => (reads++, store.keys.all()),
          initialise: (k) => store.keys.initialise(k),
          rotate: (k, b) => store.keys.rotate(k, b),
        },
        changeCounter: () => store.changeCounter(),
      };
      const tokens = await TokenService.open(counted, TTL_MS, dataDir, silent);
      const real = (await tokens.issue('alice', [], 'g1')).token;
      const readsBefore = reads;
      const stranger = newPem();
      for (let i = 0; i < 20; i++) await refused(tokens, await signWith(stranger, `made-up-${i}`));
      assert.equal(reads, readsBefore, 'made-up kids read the keys again although the store did not change');
      await refused(tokens, await signWith(stranger, kidOf(real)));
      await refused(tokens, await signWith(stranger, undefined));
    });

    it('sees a rotation made by another server on the same database at the first token carrying the new kid', async () => {
      const { dataDir, openStore } = await newServer(kind);
      const serverA = await TokenService.open(await openStore(), TTL_MS, dataDir, silent);
      const serverB = await TokenService.open(await openStore(), TTL_MS, dataDir, silent);
      const fromA = (await serverA.issue('alice', [], 'g1')).token;
      assert.equal((await serverB.verify(fromA)).sub, 'alice');
      const rotated = await serverB.rotateKeys();
      const fromB = (await serverB.issue('alice', [], 'g1')).token;
      assert.equal(kidOf(fromB), rotated.kid);
      assert.equal((await serverA.verify(fromB)).sub, 'alice');
      assert.equal((await serverB.verify(fromA)).sub, 'alice');
    });

    it('two servers starting at once on an empty database agree on one current key', async () => {
      const { dataDir, openStore } = await newServer(kind);
      const [storeA, storeB] = [await openStore(), await openStore()];
      const [serverA, serverB] = await Promise.all([
        TokenService.open(storeA, TTL_MS, dataDir, silent),
        TokenService.open(storeB, TTL_MS, dataDir, silent),
      ]);
      const [fromA, fromB] = [(await serverA.issue('alice', [], 'g1')).token, (await serverB.issue('alice', [], 'g1')).token];
      assert.equal(kidOf(fromA), kidOf(fromB));
      assert.equal((await storeA.keys.all()).length, 1);
      assert.equal((await serverB.verify(fromA)).sub, 'alice');
    });

    it('keeps the keys across a restart', async () => {
      const { dataDir, openStore } = await newServer(kind);
      const store = await openStore();
      const tokens = await TokenService.open(store, TTL_MS, dataDir, silent);
      const old = (await tokens.issue('alice', [], 'g1')).token;
      await tokens.rotateKeys();
      const current = (await tokens.issue('alice', [], 'g1')).token;
      await store.close();
      stores.splice(stores.indexOf(store), 1);
      const restarted = await TokenService.open(await openStore(), TTL_MS, dataDir, silent);
      assert.equal((await restarted.verify(old)).sub, 'alice');
      assert.equal((await restarted.verify(current)).sub, 'alice');
      assert.equal(kidOf((await restarted.issue('alice', [], 'g1')).token), kidOf(current));
    });

    it('imports the key file of an older install: its tokens (no kid) stay valid, also after a rotation; the log says the file can go', async () => {
      const { dataDir, openStore } = await newServer(kind);
      const pem = newPem();
      writeFileSync(join(dataDir, LEGACY_KEY_FILE), pem, { mode: 0o600 });
      const issuedBeforeUpgrade = await signWith(pem, undefined);
      const { logger, records } = capturingLogger('info');
      const tokens = await TokenService.open(await openStore(), TTL_MS, dataDir, logger);
      assert.equal((await tokens.verify(issuedBeforeUpgrade)).sub, 'alice');
      assert.ok(records.some((r) => String(r.msg).includes('can be removed')));
      assert.deepEqual(
        (await tokens.listKeys()).map((k) => [k.state, k.origin]),
        [['current', 'imported']],
      );
      await tokens.rotateKeys();
      assert.equal((await tokens.verify(issuedBeforeUpgrade)).sub, 'alice');
      // A kid-less token is checked against the imported key only.
      await refused(tokens, await signWith(newPem(), undefined));
      assert.ok(existsSync(join(dataDir, LEGACY_KEY_FILE)), 'the file is left for the operator to remove');
    });
  });
});
