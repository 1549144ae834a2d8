// The CLI as a newcomer meets it: shell completion and the man page generated from the command
// tree, usage errors found before anything is sent (exit 2, with the expected form), --json for
// the CLI's own errors too, and an expired login that names (or, at a terminal, runs) the way back.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { credentialsPath } from '../../src/cli/credentials.js';
import { CLI, expectCode, forgeToken, killChildren, runCli, scratchDir, startTestServer, type TestServer } from '../support/keyhold.js';

after(killChildren);

const noServer = { KEYHOLD_SERVER: 'http://127.0.0.1:9' };

/** What bash completes for the words typed so far (the last one being completed), using the generated script. */
function bashCompletes(script: string, words: string[]): string[] {
  const quoted = words.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
  const program = `${script}\nCOMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _keyhold; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const result = spawnSync('bash', ['--norc', '--noprofile', '-c', program], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout.split('\n').filter(Boolean);
}

function hasProgram(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

describe('shell completion and the man page', () => {
  it('bash completes commands, subcommands and options at every depth, skipping option values', async () => {
    const script = expectCode(await runCli(['completion', 'bash'], noServer), 0, 'completion bash').stdout;
    assert.deepEqual(bashCompletes(script, ['keyhold', 'ent']), ['entity']);
    assert.ok(bashCompletes(script, ['keyhold', 'entity', '']).includes('create'));
    assert.deepEqual(bashCompletes(script, ['keyhold', '--server', 'http://x', 'group', 'add-']), ['add-member']);
    assert.ok(bashCompletes(script, ['keyhold', 'entity', 'search', '--l']).includes('--limit'));
    assert.ok(bashCompletes(script, ['keyhold', 'entity', 'create', '--']).includes('--display-name'));
    assert.ok(bashCompletes(script, ['keyhold', 'plugin', '']).includes('verify'));
  });

  it('zsh and fish scripts cover the same commands (and parse, where those shells are installed)', async () => {
    const zsh = expectCode(await runCli(['completion', 'zsh'], noServer), 0, 'completion zsh').stdout;
    assert.match(zsh, /bashcompinit/);
    assert.match(zsh, /complete -o default -F _keyhold keyhold/);
    const fish = expectCode(await runCli(['completion', 'fish'], noServer), 0, 'completion fish').stdout;
    for (const command of ['serve', 'auth', 'entity', 'group', 'plugin', 'system', 'completion', 'man'])
      assert.match(fish, new RegExp(`-a '${command}'`));
    assert.match(fish, /-n 'test \(__keyhold_path\) = \\'\. entity\\'' -a 'create'/);
    for (const [shell, text] of [
      ['zsh', zsh],
      ['fish', fish],
    ] as const) {
      if (!hasProgram(shell)) continue;
      const checked = spawnSync(shell, ['-n'], { input: text, encoding: 'utf8' });
      assert.equal(checked.status, 0, `${shell} -n: ${checked.stderr}`);
    }
  });

  it('an unknown shell is a usage error', async () => {
    const result = expectCode(await runCli(['completion', 'tcsh'], noServer), 2, 'completion tcsh');
    assert.match(result.stderr, /choose bash, zsh or fish/);
  });

  it('the man page lists every command with its options and renders without warnings', async () => {
    const page = expectCode(await runCli(['man'], noServer), 0, 'man').stdout;
    assert.match(page, /^\.TH KEYHOLD 1 /);
    const lines = page.split('\n');
    // roff spells a hyphen \-.
    for (const command of ['serve', 'auth login', 'entity create', 'group add-member', 'plugin verify', 'completion']) {
      assert.ok(
        lines.some((l) => l.startsWith(`.B keyhold ${command.replaceAll('-', '\\-')} `)),
        `the page has ${command}`,
      );
    }
    assert.match(page, /\\-\\-display\\-name/);
    if (hasProgram('groff')) {
      const rendered = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-P-cbou'], { input: page, encoding: 'utf8' });
      assert.equal(rendered.status, 0);
      assert.equal(rendered.stderr, '', 'groff warnings');
      assert.match(rendered.stdout, /EXIT STATUS/);
    }
  });
});

describe('usage errors found by the CLI itself', () => {
  it('--server without a scheme is a usage error naming the expected form, not "cannot reach"', async () => {
    const result = expectCode(await runCli(['--server', 'localhost:8470', 'entity', 'info', 'x'], {}), 2, 'no scheme');
    assert.match(result.stderr, /http:\/\/ or https:\/\/ URL such as http:\/\/127\.0\.0\.1:8470/);
    const fromEnv = expectCode(await runCli(['entity', 'info', 'x'], { KEYHOLD_SERVER: 'ftp://host' }), 2, 'bad KEYHOLD_SERVER');
    assert.match(fromEnv.stderr, /KEYHOLD_SERVER/);
  });

  it('--limit and --number take whole numbers in range, checked before anything is sent', async () => {
    const limit = expectCode(await runCli(['entity', 'search', '--limit', 'abc'], noServer), 2, '--limit abc');
    assert.match(limit.stderr, /expected a whole number from 1 to 1000/);
    assert.doesNotMatch(limit.stderr, /cannot reach|\^\[0-9\]/);
    expectCode(await runCli(['group', 'search', '--limit', '1001'], noServer), 2, '--limit 1001');
    expectCode(await runCli(['entity', 'create', 'x', '--number', '1.5'], noServer), 2, '--number 1.5');
  });

  it('with --json, the CLI reports its own errors as JSON bodies too', async () => {
    const usage = expectCode(await runCli(['--json', 'entity', 'search', '--limit', 'abc'], noServer), 2, 'json usage');
    assert.equal(JSON.parse(usage.stderr).code, 'KH_CLI_USAGE');
    const unknown = expectCode(await runCli(['entity', 'frobnicate', '--json'], noServer), 2, 'json unknown command');
    assert.equal(JSON.parse(unknown.stderr).code, 'KH_CLI_USAGE');
    const unreachable = expectCode(await runCli(['--json', 'entity', 'info', 'x'], noServer), 1, 'json unreachable');
    assert.deepEqual(Object.keys(JSON.parse(unreachable.stderr)).sort(), ['code', 'message']);
    assert.equal(JSON.parse(unreachable.stderr).code, 'KH_CLI_FAILED');
  });

  it('subcommand help shows the global options and describes every field option', async () => {
    const help = expectCode(await runCli(['entity', 'create', '--help'], noServer), 0, 'help').stdout;
    assert.match(help, /--server <url>/);
    assert.match(help, /--json/);
    assert.match(help, /--display-name <value>\s+the display name field/);
  });
});

describe('logins that run out', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer('root-secret');
  });
  after(() => server.close());

  /** A config home whose saved login for the server is a token that expired a minute ago. */
  async function expiredLogin(): Promise<string> {
    const home = scratchDir('cli-expired');
    const now = Math.floor(Date.now() / 1000);
    const token = await forgeToken(server.dataDir, { sub: 'root', caps: ['GLOBAL_ROOT'], iat: now - 700, exp: now - 60 });
    const file = credentialsPath({ XDG_CONFIG_HOME: home });
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, JSON.stringify({ [server.url]: { id: 'root', token, expiresAt: new Date((now - 60) * 1000).toISOString() } }), {
      mode: 0o600,
    });
    return home;
  }

  it('without a terminal, the error names the command that logs in again', async () => {
    const home = await expiredLogin();
    const result = expectCode(
      await runCli(['entity', 'info', 'root'], { KEYHOLD_SERVER: server.url, XDG_CONFIG_HOME: home }),
      1,
      'expired',
    );
    assert.match(result.stderr, new RegExp(`keyhold auth login root --server ${server.url.replace(/[.]/g, '\\.')}`));
    assert.match(result.stderr, /KH_ERR_TOKEN_EXPIRED/);
  });

  it(
    'at a terminal, it asks for the secret, logs in again and finishes the command',
    { skip: hasProgram('script') ? false : 'no `script` (util-linux) to give the CLI a terminal' },
    async () => {
      const home = await expiredLogin();
      const command = [process.execPath, CLI, 'entity', 'info', 'root'].map((w) => `'${w}'`).join(' ');
      const child = spawn('script', ['-qec', command, '/dev/null'], {
        env: { PATH: process.env.PATH, KEYHOLD_SERVER: server.url, XDG_CONFIG_HOME: home, TERM: 'dumb' },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let output = '';
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await new Promise<void>((resolve) => {
        child.stdout.on('data', (chunk: Buffer) => {
          output += chunk.toString();
          if (/secret for root: $/.test(output)) resolve();
        });
        void exited.then(() => resolve());
      });
      child.stdin.write('root-secret\r');
      const code = await exited;
      clearTimeout(timer);
      assert.equal(code, 0, output);
      assert.match(output, /logging in again as root/);
      assert.match(output, /number:\s+1/);
      const again = expectCode(
        await runCli(['auth', 'token', '--json'], { KEYHOLD_SERVER: server.url, XDG_CONFIG_HOME: home }),
        0,
        'saved token works',
      );
      assert.equal(JSON.parse(again.stdout).id, 'root', '`auth token` names the id as `auth login` does');
    },
  );
});
