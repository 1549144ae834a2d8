// `keyhold plugin verify` with the webhook: the plugin's own check pings its URL, so a dead or
// wrong URL is found before the server depends on it. Run as the real CLI with a keyhold.yaml.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { JsonObject } from 'keyhold-plugin-sdk';
import { PluginHarness } from 'keyhold-plugin-sdk/testing';
import { Webhook } from '../../plugins/src/webhook.js';
import { HttpService, reply } from '../support/http-service.js';
import { expectCode, runCli } from '../support/keyhold.js';
import { repoPath } from '../support/plugin-projects.js';

const WEBHOOK = repoPath('dist/plugins/src/webhook.js');
const KEY = 'ping-key-0123456789abcdef0123456789ab';

describe('keyhold plugin verify with the webhook', () => {
  const service = new HttpService();
  let url: string;
  let dir: string;
  before(async () => {
    url = await service.listen();
    dir = mkdtempSync(join(tmpdir(), 'keyhold-webhook-verify-'));
  });
  after(async () => {
    await service.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** `keyhold --json plugin verify` of the webhook with `config`, from a keyhold.yaml (JSON is YAML). */
  async function verify(config: JsonObject) {
    const file = join(dir, 'keyhold.yaml');
    writeFileSync(file, JSON.stringify({ plugins: { plugins: { webhook: { config: { hooks: ['preEntityCreate'], ...config } } } } }));
    const result = await runCli(['--json', 'plugin', 'verify', '--config', file, WEBHOOK], {});
    return { ...result, results: JSON.parse(result.stdout) as JsonObject[] };
  }

  it('passes on a live URL, which receives a signed ping', async () => {
    service.handler = (_body, res) => reply(res, 204);
    const run = await verify({ url, signingKeys: [{ id: 'k1', secret: KEY }] });
    expectCode(run, 0, 'verify');
    assert.deepEqual(
      run.results.map((r) => [r.name, r.ok, r.selfChecked]),
      [['webhook', true, true]],
    );
    const ping = service.requests.at(-1)!;
    assert.equal(ping.headers['keyhold-event'], 'ping');
    assert.match(String(ping.headers['keyhold-signature']), /^t=\d+,kid=k1,v1=[0-9a-f]{64}$/);
    assert.deepEqual(service.received.at(-1), { hook: 'ping', config: {} });
  });

  it('fails with the reason when nothing listens at the URL', async () => {
    const closed = new HttpService();
    const deadUrl = await closed.listen();
    await closed.close();
    const run = await verify({ url: deadUrl });
    expectCode(run, 1, 'verify');
    assert.equal(run.results[0]!.ok, false);
    assert.equal(
      run.results[0]!.reason,
      `its own check failed: ${deadUrl} is unavailable (ECONNREFUSED): nothing accepts connections there: is the service running, on this host and port?`,
    );
  });

  it('fails when the service answers the ping with anything but a 2xx', async () => {
    service.handler = (_body, res) => reply(res, 404, { message: 'no such hook here' });
    const run = await verify({ url });
    expectCode(run, 1, 'verify');
    assert.equal(
      run.results[0]!.reason,
      `its own check failed: ${url} answered the ping with HTTP 404: no such hook here; it must answer 2xx`,
    );
  });

  it('prints the failure in its text output', async () => {
    service.handler = (_body, res) => reply(res, 500, { message: 'down for maintenance' });
    const file = join(dir, 'keyhold.yaml');
    writeFileSync(file, JSON.stringify({ plugins: { plugins: { webhook: { config: { url, hooks: ['preEntityCreate'] } } } } }));
    const run = expectCode(await runCli(['plugin', 'verify', '--config', file, WEBHOOK], {}), 1, 'verify');
    assert.match(run.stdout, /^FAIL {2}webhook {2}its own check failed: .* answered the ping with HTTP 500: down for maintenance/m);
  });

  it('names an unresolvable host or a timeout, never a bare "fetch failed"', async () => {
    const h = await PluginHarness.start(new Webhook(), {
      config: { url: 'http://keyhold-no-such-host.invalid/hook', hooks: ['preEntityCreate'], timeout: '5s' },
    });
    await assert.rejects(
      h.plugin.selfCheck!(),
      /keyhold-no-such-host\.invalid\/hook (could not be called \(ENOTFOUND\): its host name does not resolve|is unavailable \(EAI_AGAIN\)|did not answer within)/,
    );
  });

  it(
    'names a failed TLS handshake (a certificate no CA signed)',
    { skip: spawnSync('openssl', ['version']).status === 0 ? false : 'openssl is not installed' },
    async () => {
      const [key, cert] = [join(dir, 'tls.key'), join(dir, 'tls.crt')];
      const made = spawnSync('openssl', [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ]);
      assert.equal(made.status, 0, String(made.stderr));
      const tls = createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => res.end());
      tls.listen(0, '127.0.0.1');
      await once(tls, 'listening');
      try {
        const tlsUrl = `https://127.0.0.1:${(tls.address() as AddressInfo).port}/hook`;
        const h = await PluginHarness.start(new Webhook(), { config: { url: tlsUrl, hooks: ['preEntityCreate'], timeout: '10s' } });
        await assert.rejects(
          h.plugin.selfCheck!(),
          new RegExp(`^Error: ${tlsUrl}: the TLS handshake failed \\(DEPTH_ZERO_SELF_SIGNED_CERT\\): self-signed certificate`),
        );
      } finally {
        tls.closeAllConnections();
        tls.close();
      }
    },
  );
});
