/**
 * Listener security (SPEC 3.6): both listeners over real TLS with certificates openssl made,
 * client certificates, basic auth with htpasswd's and the library's hashes, headers,
 * rate_limit, the file and the certificates re-read without a restart, and hostile clients
 * refused while everyone else is served.
 */
import assert from 'node:assert/strict';
import { copyFileSync, renameSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { hash as bcryptHash } from '@node-rs/bcrypt';
import pino from 'pino';
import { parseConfig } from '../src/config/load.js';
import { BasicAuth } from '../src/server/basic-auth.js';
import { warnExposedCredentials } from '../src/server/exposed-credentials.js';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { htpasswdHash, makePki, missingTools, type Pki } from './helpers/pki.js';
import { askTls, refused, type Ask } from './helpers/tls-client.js';
import { get, startProxy, type TestProxy } from './helpers/proxy.js';

const skip = missingTools.length > 0 ? `needs ${missingTools.join(', ')}` : false;

let pki: Pki;
let exporter: FakeExporter;
const proxies: TestProxy[] = [];
let webCount = 0;
const ask = (port: number, path: string, options: Ask = {}) => askTls(pki, port, path, options);

function writeWeb(text: string): string {
  const file = pki.path(`web-${++webCount}.yml`);
  writeFileSync(file, text);
  return file;
}

const TLS = 'tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n';

async function start(web: string, extra = '', options: Parameters<typeof startProxy>[1] = {}): Promise<TestProxy & { web: string; scrape: number; admin: number }> {
  const file = writeWeb(web);
  const proxy = await startProxy(
    `${extra}routes:\n  - name: node\n    path: /metrics\n    upstream: ${exporter.url}/metrics\n    ttl: 1h\n`,
    { ...options, webConfigFile: file },
  );
  proxies.push(proxy);
  return Object.assign(proxy, { web: file, scrape: proxy.app.scrapeAddress.port, admin: proxy.app.adminAddress.port });
}

/** Replaces a file the way deploy tools do: write beside it, rename over it. */
function replace(file: string, text: string): void {
  writeFileSync(`${file}.new`, text);
  renameSync(`${file}.new`, file);
}

describe('listener security', { skip }, () => {
  let promHash: string;
  let adminHash: string;

  before(async () => {
    pki = makePki();
    exporter = await startFakeExporter();
    promHash = htpasswdHash('scrape-secret');
    adminHash = await bcryptHash('admin-secret', 10);
  });

  after(async () => {
    await Promise.all(proxies.map((p) => p.close()));
    await exporter.close();
  });

  test('both listeners answer over TLS with the configured certificate, and nothing below TLS 1.2', async () => {
    const p = await start(TLS);
    const scrape = await ask(p.scrape, '/metrics');
    assert.equal(scrape.status, 200);
    assert.match(scrape.body, /fake_version/);
    assert.equal(scrape.server, 'scrapecache-1');
    assert.equal((await ask(p.admin, '/-/ready')).status, 200);
    assert.equal((await ask(p.admin, '/cache')).status, 200);
    const old = await refused(ask(p.scrape, '/metrics', { maxVersion: 'TLSv1.1' }));
    assert.match(old.message, /version|protocol|alert/i);
  });

  test('cipher_suites, curve_preferences and max_version decide the handshake a client gets', async () => {
    const p = await start(`${TLS}  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n  curve_preferences: [CurveP384]\n`);
    const handshake = () =>
      new Promise<{ cipher: string; curve: string | undefined; version: string | null }>((resolve, reject) => {
        const socket = tlsConnect({ host: '127.0.0.1', port: p.scrape, ca: pki.read('ca.pem') }, () => {
          resolve({ cipher: socket.getCipher().name, curve: (socket.getEphemeralKeyInfo() as { name?: string } | null)?.name, version: socket.getProtocol() });
          socket.end();
        });
        socket.on('error', reject);
      });
    assert.deepEqual(await handshake(), { cipher: 'ECDHE-ECDSA-AES256-GCM-SHA384', curve: 'secp384r1', version: 'TLSv1.2' });
  });

  test('RequestClientCert asks for a certificate but admits clients with any or none', async () => {
    const p = await start(`${TLS}  client_auth_type: RequestClientCert\n`);
    assert.equal((await ask(p.scrape, '/metrics')).status, 200);
    assert.equal((await ask(p.scrape, '/metrics', { client: 'client-foreign' })).status, 200);
  });

  test('plain HTTP to a TLS port gets 400 in plain HTTP, as Go servers answer', async () => {
    const p = await start(TLS);
    const answer = await get(`http://127.0.0.1:${p.scrape}/metrics`);
    assert.equal(answer.status, 400);
    assert.equal(answer.body.toString(), 'Client sent an HTTP request to an HTTPS server.\n');
    assert.equal((await ask(p.scrape, '/metrics')).status, 200);
  });

  test('basic auth admits htpasswd and library hashes; a wrong password or an unknown user gets 401 with WWW-Authenticate: Basic', async () => {
    const p = await start(`${TLS}basic_auth_users:\n  prom: '${promHash}'\n  ops: '${adminHash}'\n`);
    assert.equal((await ask(p.scrape, '/metrics', { auth: ['prom', 'scrape-secret'] })).status, 200);
    assert.equal((await ask(p.scrape, '/metrics', { auth: ['ops', 'admin-secret'] })).status, 200);
    for (const auth of [undefined, ['prom', 'wrong'], ['nobody', 'scrape-secret'], ['prom', 'admin-secret']] as const) {
      const a = await ask(p.scrape, '/metrics', auth ? { auth: [...auth] } : {});
      assert.equal(a.status, 401, String(auth));
      assert.equal(a.headers['www-authenticate'], 'Basic');
    }
    const bearer = await ask(p.scrape, '/metrics', { headers: { authorization: 'Bearer scrape-secret' } });
    assert.equal(bearer.status, 401);
  });

  test('health checks need no basic auth; every other admin call needs it, and the admin token besides', async () => {
    const p = await start(`${TLS}basic_auth_users:\n  ops: '${adminHash}'\n`, 'admin:\n  listen: 127.0.0.1:0\n  token: admin-token-1\n', { listen: false });
    assert.equal((await ask(p.admin, '/-/healthy')).status, 200);
    assert.equal((await ask(p.admin, '/-/ready')).status, 200);
    assert.equal((await ask(p.admin, '/cache')).status, 401);
    const noToken = await ask(p.admin, '/cache', { auth: ['ops', 'admin-secret'] });
    assert.equal(noToken.status, 401);
    assert.equal(noToken.headers['www-authenticate'], 'Bearer');
    const both = await ask(p.admin, '/cache', { auth: ['ops', 'admin-secret'], headers: { 'x-scrapecache-token': 'admin-token-1' } });
    assert.equal(both.status, 200);
    const tokenOnly = await ask(p.admin, '/cache', { headers: { 'x-scrapecache-token': 'admin-token-1' } });
    assert.equal(tokenOnly.status, 401);
    assert.equal(tokenOnly.headers['www-authenticate'], 'Basic');
    // The scrape listener has no health route of its own: nothing there gets past basic auth.
    assert.equal((await ask(p.scrape, '/-/healthy')).status, 401);
  });

  test('a 10 KB Authorization header gets 431 and the listener serves the next client', async () => {
    const p = await start(`${TLS}basic_auth_users:\n  prom: '${promHash}'\n`);
    const huge = await ask(p.scrape, '/metrics', { headers: { authorization: `Basic ${'QUFB'.repeat(2560)}` } });
    assert.equal(huge.status, 431);
    assert.equal((await ask(p.scrape, '/metrics', { auth: ['prom', 'scrape-secret'] })).status, 200);
  });

  test('RequireAndVerifyClientCert admits the CA\'s clients whose SAN is allowed, and refuses the rest while serving the others', async () => {
    const p = await start(
      `${TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  client_allowed_sans: [prometheus.test]\n`,
    );
    assert.equal((await ask(p.scrape, '/metrics', { client: 'client' })).status, 200);
    await refused(ask(p.scrape, '/metrics'));
    assert.equal((await ask(p.scrape, '/metrics', { client: 'client' })).status, 200);
    await refused(ask(p.scrape, '/metrics', { client: 'client-foreign' }));
    assert.equal((await ask(p.admin, '/-/healthy', { client: 'client' })).status, 200);
    await refused(ask(p.scrape, '/metrics', { client: 'client-intruder' }));
    assert.equal((await ask(p.scrape, '/metrics', { client: 'client' })).status, 200);
  });

  test('client_auth_type takes effect on the next connection when the file changes: VerifyClientCertIfGiven, then RequireAnyClientCert', async () => {
    const p = await start(`${TLS}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n`);
    assert.equal((await ask(p.scrape, '/metrics')).status, 200);
    assert.equal((await ask(p.scrape, '/metrics', { client: 'client' })).status, 200);
    await refused(ask(p.scrape, '/metrics', { client: 'client-foreign' }));

    replace(p.web, `${TLS}  client_auth_type: RequireAnyClientCert\n`);
    assert.equal((await ask(p.scrape, '/metrics', { client: 'client-foreign' })).status, 200);
    await refused(ask(p.scrape, '/metrics'));
  });

  test('replaced certificate files: the next new connection presents the new certificate, without a restart', async () => {
    copyFileSync(pki.path('server.pem'), pki.path('rotating.pem'));
    copyFileSync(pki.path('server.key'), pki.path('rotating.key'));
    const p = await start('tls_server_config:\n  cert_file: rotating.pem\n  key_file: rotating.key\n');
    assert.equal((await ask(p.scrape, '/metrics')).server, 'scrapecache-1');
    replace(pki.path('rotating.key'), pki.read('server2.key'));
    replace(pki.path('rotating.pem'), pki.read('server2.pem'));
    const after = await ask(p.scrape, '/metrics');
    assert.equal(after.status, 200);
    assert.equal(after.server, 'scrapecache-2');
    assert.equal((await ask(p.admin, '/-/healthy')).server, 'scrapecache-2');
  });

  test('while the web config is invalid every request gets 500, never an unprotected answer; fixed, it applies without a restart', async () => {
    const p = await start(`${TLS}basic_auth_users:\n  prom: '${promHash}'\n`);
    replace(p.web, `${TLS}basic_auth_users:\n  prom: not-a-hash\n`);
    const broken = await ask(p.scrape, '/metrics', { auth: ['prom', 'scrape-secret'] });
    assert.equal(broken.status, 500);
    assert.equal((await ask(p.scrape, '/metrics')).status, 500);
    assert.equal((await ask(p.admin, '/-/healthy')).status, 500);
    assert.ok(p.logs.some((l) => l['msg'] === 'web config invalid: every request gets 500 until it is fixed' && String(l['error']).includes(':5:9: the password of "prom" is not a bcrypt hash')));

    replace(p.web, `${TLS}basic_auth_users:\n  ops: '${adminHash}'\n`);
    assert.equal((await ask(p.scrape, '/metrics', { auth: ['prom', 'scrape-secret'] })).status, 401);
    assert.equal((await ask(p.scrape, '/metrics', { auth: ['ops', 'admin-secret'] })).status, 200);
  });

  test('removing TLS from the file of a TLS listener refuses requests (500) instead of serving them', async () => {
    const p = await start(TLS);
    replace(p.web, '');
    assert.equal((await ask(p.scrape, '/metrics')).status, 500);
    replace(p.web, TLS);
    assert.equal((await ask(p.scrape, '/metrics')).status, 200);
  });

  test('a change seen only by the file watcher, on a kept-alive connection, applies too', async () => {
    const p = await start('basic_auth_users:\n', '', { webSecurity: { pollMs: 100 } });
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
    const viaKeptConnection = () =>
      new Promise<number>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: p.scrape, path: '/metrics', agent: keepAlive }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
    assert.equal(await viaKeptConnection(), 200);
    replace(p.web, `basic_auth_users:\n  prom: '${promHash}'\n`);
    const deadline = Date.now() + 10_000;
    let status = 200;
    while (status === 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      status = await viaKeptConnection();
    }
    assert.equal(status, 401);
    keepAlive.destroy();
  });

  test('rate_limit answers 429 beyond the burst; health checks do not count', async () => {
    const p = await start(`${TLS}rate_limit:\n  interval: 1h\n  burst: 2\n`);
    assert.equal((await ask(p.admin, '/-/healthy')).status, 200);
    assert.equal((await ask(p.scrape, '/metrics')).status, 200);
    assert.equal((await ask(p.scrape, '/metrics')).status, 200);
    const over = await ask(p.scrape, '/metrics');
    assert.equal(over.status, 429);
    assert.equal((await ask(p.admin, '/-/healthy')).status, 200);
    // The admin listener has its own bucket.
    assert.equal((await ask(p.admin, '/cache')).status, 200);
  });

  test('http_server_config.headers are on every answer, refusals included', async () => {
    const p = await start(
      `${TLS}http_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=63072000\nbasic_auth_users:\n  prom: '${promHash}'\n`,
    );
    for (const a of [await ask(p.scrape, '/metrics', { auth: ['prom', 'scrape-secret'] }), await ask(p.scrape, '/metrics'), await ask(p.admin, '/-/healthy')]) {
      assert.equal(a.headers['x-frame-options'], 'deny');
      assert.equal(a.headers['strict-transport-security'], 'max-age=63072000');
    }
  });

  test('a client that sends garbage, or never finishes its handshake, is dropped while the listener serves the others', async () => {
    const p = await start(TLS, '', { limits: { headersTimeoutMs: 300, requestTimeoutMs: 1000, keepAliveTimeoutMs: 1000 } });
    const closed = (socket: Socket) => new Promise<void>((resolve) => socket.resume().on('close', () => resolve()).on('error', () => undefined));
    const garbage = connect(p.scrape, '127.0.0.1', () => garbage.write(Buffer.from('16030100ff0100' + 'ab'.repeat(300), 'hex')));
    const silent = connect(p.scrape, '127.0.0.1');
    assert.equal((await ask(p.scrape, '/metrics')).status, 200);
    await closed(garbage);
    await closed(silent);
    assert.equal((await ask(p.scrape, '/metrics')).status, 200);
  });

  test('basic auth works on a plain-HTTP listener too', async () => {
    const p = await start(`basic_auth_users:\n  prom: '${promHash}'\n`);
    const auth = { authorization: `Basic ${Buffer.from('prom:scrape-secret').toString('base64')}` };
    assert.equal((await get(`http://127.0.0.1:${p.scrape}/metrics`)).status, 401);
    assert.equal((await get(`http://127.0.0.1:${p.scrape}/metrics`, auth)).status, 200);
  });
});

describe('bcrypt work', () => {
  const users = new Map([
    ['prom', '$2y$10$UsjJbWxBzN.xkRiST3h0euZkHj5SfhmL7.54D7bxdViS0rpY9xWLy'],
    ['ops', `$2b$10$${'a'.repeat(53)}`],
    ['old', `$2a$12$${'b'.repeat(53)}`],
  ]);
  const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

  /** A bcrypt whose checks the test finishes by hand. */
  function fakeBcrypt() {
    const calls: Array<{ password: string; hash: string; finish(ok: boolean): void }> = [];
    let running = 0;
    let most = 0;
    return {
      calls,
      most: () => most,
      verify: (password: string | Buffer, hash: string | Buffer) =>
        new Promise<boolean>((resolve) => {
          running++;
          most = Math.max(most, running);
          calls.push({ password: String(password), hash: String(hash), finish: (ok) => (running--, resolve(ok)) });
        }),
    };
  }
  const settle = () => new Promise((r) => setImmediate(r));

  test('a success is remembered, so the next scrape with the same credentials costs no bcrypt; a failure is remembered too (issue 17 #5)', async () => {
    const bcrypt = fakeBcrypt();
    const auth = new BasicAuth(bcrypt, users);
    const first = auth.check(basic('prom', 'pw'));
    assert.ok(first instanceof Promise);
    bcrypt.calls[0]!.finish(true);
    assert.equal(await first, 'ok');
    assert.equal(auth.check(basic('prom', 'pw')), 'ok');
    assert.equal(bcrypt.calls.length, 1);

    const wrong = auth.check(basic('prom', 'nope'));
    assert.ok(wrong instanceof Promise);
    bcrypt.calls[1]!.finish(false);
    assert.equal(await wrong, 'denied');
    // A flood repeating a wrong password is refused from memory and spends no bcrypt budget.
    assert.equal(auth.check(basic('prom', 'nope')), 'denied');
    assert.equal(bcrypt.calls.length, 2);
  });

  test("an unknown user is checked against one of the users' own hashes (issue 17 #9), and refused even when it matches", async () => {
    const bcrypt = fakeBcrypt();
    const auth = new BasicAuth(bcrypt, users);
    const answer = auth.check(basic('mallory', 'pw'));
    await settle();
    assert.equal(bcrypt.calls.length, 1);
    assert.ok([...users.values()].includes(bcrypt.calls[0]!.hash));
    bcrypt.calls[0]!.finish(true);
    assert.equal(await answer, 'denied');
  });

  test('at most `concurrency` bcrypt checks run at once; beyond the waiting room the rest are told busy', async () => {
    const bcrypt = fakeBcrypt();
    const auth = new BasicAuth(bcrypt, users, { concurrency: 2, maxWaiting: 3 });
    const answers = Array.from({ length: 7 }, (_, i) => auth.check(basic('prom', `guess-${i}`)) as Promise<string>);
    await settle();
    assert.equal(bcrypt.calls.length, 2);
    assert.deepEqual(await Promise.all(answers.slice(5)), ['busy', 'busy']);
    for (let done = 0; done < 5; done++) {
      await settle();
      bcrypt.calls[done]!.finish(false);
    }
    assert.deepEqual(await Promise.all(answers.slice(0, 5)), ['denied', 'denied', 'denied', 'denied', 'denied']);
    assert.equal(bcrypt.calls.length, 5);
    assert.equal(bcrypt.most(), 2);
  });

  test('what needs no bcrypt is answered at once: no header, another scheme, no colon, a password over 72 bytes, a header over 1 KiB', () => {
    const bcrypt = fakeBcrypt();
    const auth = new BasicAuth(bcrypt, users);
    assert.equal(auth.check(undefined), 'denied');
    assert.equal(auth.check('Bearer abc'), 'denied');
    assert.equal(auth.check(`Basic ${Buffer.from('prom').toString('base64')}`), 'denied');
    assert.equal(auth.check(basic('prom', 'x'.repeat(73))), 'denied');
    assert.equal(auth.check(basic('prom', 'x'.repeat(1000))), 'too_large');
    assert.equal(bcrypt.calls.length, 0);
    assert.ok(auth.check(`basic ${Buffer.from('prom:pw').toString('base64')}`) instanceof Promise, 'the scheme is case-insensitive');
  });
});

describe('start-up warning for credentials behind an open scrape listener', () => {
  function warnings(yaml: string, web?: { tls?: object; users?: Map<string, string> }): string[] {
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => lines.push(JSON.parse(line).msg as string) });
    const config = parseConfig(yaml, '/tmp/proxy.yaml', { SECRET: 's' });
    warnExposedCredentials(config, web ? ({ users: new Map(), ...web } as never) : undefined, log);
    return lines;
  }
  const routes = `routes:
  - name: open
    path: /open
    upstream: http://127.0.0.1:9100/metrics
  - name: hw
    path: /hw
    upstream: https://127.0.0.1:9400/metrics
    basic_auth: { username: prom, password: \${SECRET} }
  - name: token
    path: /token
    upstream: http://127.0.0.1:9401/metrics
    headers: { Authorization: Bearer abc }
`;

  test('names each route that sends credentials when the listener is open beyond loopback without TLS or basic auth', () => {
    const lines = warnings(`listen: 0.0.0.0:9180\n${routes}`);
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^route hw sends credentials upstream \(basic_auth\)/);
    assert.match(lines[1]!, /^route token sends credentials upstream \(bearer_token_file\)/);
  });

  test('says nothing on loopback, or with TLS or basic auth on the scrape listener', () => {
    assert.deepEqual(warnings(`listen: 127.0.0.1:9180\n${routes}`), []);
    assert.deepEqual(warnings(`listen: '[::1]:9180'\n${routes}`), []);
    assert.deepEqual(warnings(`listen: 0.0.0.0:9180\n${routes}`, { tls: {} }), []);
    assert.deepEqual(warnings(`listen: 0.0.0.0:9180\n${routes}`, { users: new Map([['a', 'b']]) }), []);
  });
});
