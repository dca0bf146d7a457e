/**
 * `--web.config.file` on the command line (SPEC 1, 3.6): a bad file stops the start with
 * file:line:column and exit 1, `--check-config` checks it too, and with `workers: 2` every
 * process serves behind it.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { htpasswdHash, makePki, missingTools, type Pki } from './helpers/pki.js';
import { askTls } from './helpers/tls-client.js';

const cli = new URL('../src/cli.js', import.meta.url).pathname;
const skip = missingTools.length > 0 ? `needs ${missingTools.join(', ')}` : false;
const children = new Set<ChildProcess>();
let pki: Pki;
let exporter: FakeExporter;
let hash: string;

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[]): Promise<Exit> {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}

function write(name: string, text: string): string {
  writeFileSync(pki.path(name), text);
  return pki.path(name);
}

const proxyYaml = (extra = '') =>
  `listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n${extra}routes:\n  - name: node\n    path: /metrics\n    upstream: ${exporter.url}/metrics\n    ttl: 1m\n`;
const BAD_WEB = 'tls_server_config:\n  cert_file: server.pem\n  key_file: missing.key\n  min_version: TLS13\n  max_version: TLS12\nbasic_auth_users:\n  prom: plain\n';

describe('--web.config.file', { skip }, () => {
  before(async () => {
    pki = makePki();
    exporter = await startFakeExporter();
    hash = htpasswdHash('scrape-secret');
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await exporter.close();
  });

  test('--check-config checks the web config too and prints every problem with file:line:column', async () => {
    const proxy = write('proxy.yaml', proxyYaml());
    const web = write('bad-web.yml', BAD_WEB);
    const r = await run(['--config.file', proxy, '--web.config.file', web, '--check-config']);
    assert.equal(r.code, 1);
    assert.deepEqual(r.stderr.trim().split('\n'), [
      `${web}:3:13: cannot read key_file ${pki.path('missing.key')}: ENOENT`,
      `${web}:4:16: min_version TLS13 is above max_version TLS12`,
      `${web}:7:9: the password of "prom" is not a bcrypt hash (make one with: htpasswd -nBC 10 "" | tr -d ':\\n')`,
      '3 problems found',
    ]);
    const good = write('good-web.yml', `tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\nbasic_auth_users:\n  prom: '${hash}'\n`);
    const ok = await run(['--config.file', proxy, '--web.config.file', good, '--check-config']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, `${proxy}: OK (1 route)\n${good}: OK\n`);
  });

  test('an invalid web config stops the start with exit 1 and file:line:column on stderr', async () => {
    const proxy = write('proxy.yaml', proxyYaml());
    const web = write('bad-web.yml', 'tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_ca_file: ca.pem\n');
    const r = await run(['--config.file', proxy, '--web.config.file', web]);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `scrapecache: invalid config: ${web}:4:19: a client CA is configured without a client_auth_type that asks for client certificates (e.g. RequireAndVerifyClientCert)\n`,
    );
    const missing = await run(['--config.file', proxy, '--web.config.file', pki.path('nowhere.yml')]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, `scrapecache: invalid config: ${pki.path('nowhere.yml')}: cannot read web config: no such file\n`);
  });

  test('with workers: 2 the workers serve scrapes and the primary the admin calls, both over TLS with basic auth', async () => {
    const proxy = write('proxy-workers.yaml', proxyYaml().replace('admin:', 'workers: 2\nadmin:'));
    const web = write('workers-web.yml', `tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\nbasic_auth_users:\n  prom: '${hash}'\n`);
    const child = spawn(process.execPath, [cli, '--config.file', proxy, '--web.config.file', web], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const { scrape, admin } = await new Promise<{ scrape: number; admin: number }>((resolve, reject) => {
      let buffered = '';
      const timer = setTimeout(() => reject(new Error('no "scrapecache listening" line within 15 s')), 15_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        for (const line of buffered.split('\n').slice(0, -1)) {
          const entry = JSON.parse(line) as { msg: string; scrape?: string; admin?: string };
          if (entry.msg === 'scrapecache listening') {
            clearTimeout(timer);
            resolve({ scrape: Number(entry.scrape!.split(':').pop()), admin: Number(entry.admin!.split(':').pop()) });
          }
        }
        buffered = buffered.slice(buffered.lastIndexOf('\n') + 1);
      });
    });
    const answers = await Promise.all(Array.from({ length: 6 }, () => askTls(pki, scrape, '/metrics', { auth: ['prom', 'scrape-secret'] })));
    for (const a of answers) assert.equal(a.status, 200, a.body);
    assert.equal((await askTls(pki, scrape, '/metrics')).status, 401);
    assert.equal((await askTls(pki, admin, '/-/ready')).status, 200);
    assert.equal((await askTls(pki, admin, '/cache')).status, 401);
    assert.equal((await askTls(pki, admin, '/cache', { auth: ['prom', 'scrape-secret'] })).status, 200);
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});
