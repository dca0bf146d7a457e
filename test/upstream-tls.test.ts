/**
 * HTTPS upstreams (SPEC 2: tls, basic_auth, bearer_token_file): an exporter behind a private CA
 * that wants a client certificate and credentials is scraped with what the config files hold,
 * and those secrets show up nowhere the operator or a client can read them.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, beforeEach, describe, test } from 'node:test';
import { ConfigError, loadConfig, parseConfig } from '../src/config/load.js';
import { get, post, SCRAPE_HEADERS, startProxy, type TestProxy } from './helpers/proxy.js';

const OPENSSL = '/usr/bin/openssl';
const skip = existsSync(OPENSSL) ? false : `needs ${OPENSSL} to make a test CA`;

const PASSWORD = 'hunter2-first-password';
const NEW_PASSWORD = 'correct-horse-second-password';
const TOKEN = 'tok-3f1c9a7e-bearer-secret';
const BODY = '# TYPE hw_temperature_celsius gauge\nhw_temperature_celsius{sensor="cpu"} 41\n';

interface Pki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A second CA that signed nothing the exporter serves. */
  otherCa: string;
}

/** A throwaway CA, a server certificate for hw.test only (no IP SAN) and a client certificate. */
function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'scrapecache-tls-'));
  const ssl = (...args: string[]) => execFileSync(OPENSSL, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const makeCa = (name: string) =>
    ssl('req', '-x509', ...ec, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  makeCa('ca');
  makeCa('other-ca');
  const leaf = (name: string, cn: string, ext: string) => {
    ssl('req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    writeFileSync(join(dir, `${name}.ext`), ext);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2',
      '-out', `${name}.pem`, '-extfile', `${name}.ext`);
  };
  leaf('server', 'hw.test', 'subjectAltName=DNS:hw.test\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'scrapecache-client', 'extendedKeyUsage=clientAuth\n');
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return {
    dir,
    ca: read('ca.pem'),
    serverCert: read('server.pem'),
    serverKey: read('server.key'),
    clientCert: read('client.pem'),
    clientKey: read('client.key'),
    otherCa: read('other-ca.pem'),
  };
}

interface Seen {
  path: string;
  authorization: string | undefined;
  clientCn: string | undefined;
}

interface TlsExporter {
  port: number;
  seen: Seen[];
  /** The basic-auth password it accepts now. */
  password: string;
  close(): Promise<void>;
}

/** An HTTPS exporter that insists on a client certificate from the CA and on credentials. */
async function startTlsExporter(pki: Pki): Promise<TlsExporter> {
  const sockets = new Set<Socket>();
  const state: TlsExporter = { port: 0, seen: [], password: PASSWORD, close: async () => undefined };
  const server: Server = createServer(
    { key: pki.serverKey, cert: pki.serverCert, ca: pki.ca, requestCert: true, rejectUnauthorized: true },
    (req: IncomingMessage, res) => {
      const socket = req.socket as TLSSocket;
      const cn = socket.authorized ? socket.getPeerCertificate().subject?.CN : undefined;
      state.seen.push({ path: req.url ?? '', authorization: req.headers.authorization, clientCn: typeof cn === 'string' ? cn : undefined });
      const basic = `Basic ${Buffer.from(`prom:${state.password}`).toString('base64')}`;
      const auth = req.headers.authorization;
      if (auth !== basic && auth !== `Bearer ${TOKEN}`) {
        res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="hw"', 'Content-Type': 'text/plain' });
        res.end('Unauthorized\n');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(BODY) });
      res.end(BODY);
    },
  );
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  // Handshakes the exporter refuses (no client cert, wrong CA) are expected here.
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.port = (server.address() as AddressInfo).port;
  state.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return state;
}

const HEAD = 'listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n';

/** The routes, with the files named relative to the config file's directory from `dir` (`''` or `../x/`). */
function routesYaml(port: number, dir = ''): string {
  const up = `https://127.0.0.1:${port}/metrics`;
  const mtls = `ca_file: ${dir}ca.pem, cert_file: ${dir}client.pem, key_file: ${dir}client.key, server_name: hw.test`;
  return `routes:
  - name: hw
    path: /hw
    upstream: ${up}
    tls: { ${mtls} }
    basic_auth: { username: prom, password_file: ${dir}hw-password }
  - name: hw-bearer
    path: /hw-bearer
    upstream: ${up}
    tls: { ${mtls} }
    bearer_token_file: ${dir}secrets/hw-token
  - name: hw-pages
    path_prefix: /hw-pages/
    upstream: https://127.0.0.1:${port}/
    cache: false
    tls: { ${mtls} }
    basic_auth: { username: prom, password_file: ${dir}hw-password }
  - name: hw-noca
    path: /hw-noca
    upstream: ${up}
    tls: { cert_file: ${dir}client.pem, key_file: ${dir}client.key, server_name: hw.test }
    basic_auth: { username: prom, password_file: ${dir}hw-password }
  - name: hw-otherca
    path: /hw-otherca
    upstream: ${up}
    tls: { ca_file: ${dir}other-ca.pem, cert_file: ${dir}client.pem, key_file: ${dir}client.key, server_name: hw.test }
    basic_auth: { username: prom, password_file: ${dir}hw-password }
  - name: hw-noname
    path: /hw-noname
    upstream: ${up}
    tls: { ca_file: ${dir}ca.pem, cert_file: ${dir}client.pem, key_file: ${dir}client.key }
    basic_auth: { username: prom, password_file: ${dir}hw-password }
  - name: hw-insecure
    path: /hw-insecure
    upstream: ${up}
    tls: { cert_file: ${dir}client.pem, key_file: ${dir}client.key, insecure_skip_verify: true }
    basic_auth: { username: prom, password_file: ${dir}hw-password }
`;
}

/** Every string that would give a secret away: as written and as it travels in Authorization. */
function secretForms(): string[] {
  return [PASSWORD, NEW_PASSWORD, TOKEN, ...[PASSWORD, NEW_PASSWORD].map((p) => Buffer.from(`prom:${p}`).toString('base64'))];
}

function assertNoSecrets(text: string, where: string): void {
  for (const secret of secretForms()) assert.ok(!text.includes(secret), `${where} must not contain the secret ${JSON.stringify(secret)}`);
}

describe('https upstreams with a private CA, a client certificate and credentials from files', { skip }, () => {
  let pki: Pki;
  let exporter: TlsExporter;
  let proxy: TestProxy;
  let fromStart: TestProxy;
  let configDir: string;
  /** Every body the proxy answered in these tests, searched for secrets at the end. */
  const answered: string[] = [];

  const scrape = async (path: string) => {
    const res = await get(`${proxy.url}${path}`, SCRAPE_HEADERS);
    answered.push(res.body.toString());
    return res;
  };

  before(async () => {
    pki = makePki();
    exporter = await startTlsExporter(pki);
    // The proxy's config dir exists only once it runs: start with no TLS routes, put the files
    // next to proxy.yaml, then load the real config the way an operator would, by reload.
    proxy = await startProxy(`routes:\n  - name: placeholder\n    path: /placeholder\n    upstream: http://127.0.0.1:1/metrics\n`);
    configDir = dirname(proxy.file);
    writeFileSync(join(configDir, 'ca.pem'), pki.ca);
    writeFileSync(join(configDir, 'other-ca.pem'), pki.otherCa);
    writeFileSync(join(configDir, 'client.pem'), pki.clientCert);
    writeFileSync(join(configDir, 'client.key'), pki.clientKey);
    // Secret files as Kubernetes and editors write them: with a trailing newline.
    writeFileSync(join(configDir, 'hw-password'), `${PASSWORD}\n`);
    mkdirSync(join(configDir, 'secrets'));
    writeFileSync(join(configDir, 'secrets', 'hw-token'), `${TOKEN}\n`);
    writeFileSync(proxy.file, HEAD + routesYaml(exporter.port));
    const reload = await post(`${proxy.adminUrl}/-/reload`);
    assert.equal(reload.status, 200, `loading the TLS config failed: ${reload.body.toString()}`);
    answered.push(reload.body.toString());
    // A second proxy that reads the same files at start-up, named from its own directory.
    fromStart = await startProxy(routesYaml(exporter.port, `../${basename(configDir)}/`));
  });

  after(async () => {
    await proxy?.close();
    await fromStart?.close();
    await exporter?.close();
    // Throwaway keys and secrets, but keys and secrets: leave none in /tmp.
    for (const dir of [pki?.dir, configDir, fromStart && dirname(fromStart.file)]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    exporter.seen.length = 0;
    await proxy.app.cache.invalidate({});
  });

  test('relative tls and secret file paths are read relative to the config file, not the working directory', () => {
    assert.notEqual(process.cwd(), configDir);
    const route = loadConfig(proxy.file).routes.find((r) => r.name === 'hw')!;
    assert.equal(route.tls?.ca?.toString(), pki.ca);
    assert.equal(route.tls?.cert?.toString(), pki.clientCert);
    assert.equal(route.tls?.key?.toString(), pki.clientKey);
    assert.equal(route.tls?.serverName, 'hw.test');
  });

  test('a proxy started with the config reads the files at start-up, relative to its config file', async () => {
    const res = await get(`${fromStart.url}/hw`, SCRAPE_HEADERS);
    answered.push(res.body.toString());
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(res.body.toString(), BODY);
    assert.equal(exporter.seen[0]?.authorization, `Basic ${Buffer.from(`prom:${PASSWORD}`).toString('base64')}`);
    assert.equal(exporter.seen[0]?.clientCn, 'scrapecache-client');
    const bearer = await get(`${fromStart.url}/hw-bearer`, SCRAPE_HEADERS);
    assert.equal(bearer.status, 200, bearer.body.toString());
    assert.equal(exporter.seen[1]?.authorization, `Bearer ${TOKEN}`);
  });

  test('scrapes an https exporter with the CA, the client certificate and basic auth from a password file', async () => {
    const res = await scrape('/hw');
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(res.body.toString(), BODY);
    assert.equal(exporter.seen.length, 1);
    const seen = exporter.seen[0]!;
    assert.equal(seen.path, '/metrics');
    // The trailing newline of the file is not part of the password.
    assert.equal(seen.authorization, `Basic ${Buffer.from(`prom:${PASSWORD}`).toString('base64')}`);
    assert.equal(seen.clientCn, 'scrapecache-client', 'the exporter must have seen the configured client certificate');
  });

  test('bearer_token_file sends "Bearer <token>" without the file\'s trailing newline', async () => {
    const res = await scrape('/hw-bearer');
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(res.body.toString(), BODY);
    assert.equal(exporter.seen.length, 1);
    assert.equal(exporter.seen[0]!.authorization, `Bearer ${TOKEN}`);
    assert.equal(exporter.seen[0]!.clientCn, 'scrapecache-client');
  });

  test('a pass-through route uses the same CA, client certificate and credentials', async () => {
    const res = await scrape('/hw-pages/metrics?collect=cpu');
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(res.body.toString(), BODY);
    assert.equal(res.headers['cache-status'], 'scrapecache; fwd=bypass');
    assert.equal(exporter.seen.length, 1);
    assert.equal(exporter.seen[0]!.path, '/metrics?collect=cpu');
    assert.equal(exporter.seen[0]!.authorization, `Basic ${Buffer.from(`prom:${PASSWORD}`).toString('base64')}`);
    assert.equal(exporter.seen[0]!.clientCn, 'scrapecache-client');
  });

  for (const [path, why] of [
    ['/hw-noca', 'without ca_file (system CAs only)'],
    ['/hw-otherca', 'with a ca_file that did not sign the server certificate'],
    ['/hw-noname', 'without server_name, when the certificate names hw.test and not 127.0.0.1'],
  ] as const) {
    test(`an upstream certificate that does not verify ${why} gets a 502 naming the route and TLS`, async () => {
      const route = path.slice(1);
      const res = await scrape(path);
      assert.equal(res.status, 502);
      const body = res.body.toString();
      assert.match(body, new RegExp(`^route ${route}: [^\\n]*TLS[^\\n]*\\n$`), `one line naming the route and TLS, got ${JSON.stringify(body)}`);
      assert.equal(exporter.seen.length, 0, 'no request may be sent over an unverified connection');
      // The failure is not cached: a second scrape tries again and fails the same way.
      assert.equal((await scrape(path)).status, 502);
      const listing = await get(`${proxy.adminUrl}/cache`);
      assert.deepEqual(JSON.parse(listing.body.toString()), []);
    });
  }

  test('insecure_skip_verify: true accepts the certificate without a CA or a matching name', async () => {
    const res = await scrape('/hw-insecure');
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(res.body.toString(), BODY);
    assert.equal(exporter.seen[0]?.clientCn, 'scrapecache-client', 'the client certificate is still presented');
  });

  test('GET /cache lists TLS routes without their credentials', async () => {
    assert.equal((await scrape('/hw')).status, 200);
    assert.equal((await scrape('/hw-bearer')).status, 200);
    const listing = await get(`${proxy.adminUrl}/cache`);
    assert.equal(listing.status, 200);
    const text = listing.body.toString();
    const entries = JSON.parse(text) as Array<{ route: string }>;
    assert.deepEqual(entries.map((e) => e.route).sort(), ['hw', 'hw-bearer']);
    assertNoSecrets(text, 'GET /cache');
    assertNoSecrets((await get(`${proxy.adminUrl}/metrics`)).body.toString(), 'GET /metrics');
  });

  test('a rewritten password file is read again on POST /-/reload and the new password is used', async () => {
    assert.equal((await scrape('/hw')).status, 200);
    assert.match(String((await scrape('/hw')).headers['cache-status']), /^scrapecache; hit/);

    writeFileSync(join(configDir, 'hw-password'), `${NEW_PASSWORD}\n`);
    exporter.password = NEW_PASSWORD;
    exporter.seen.length = 0;
    const reload = await post(`${proxy.adminUrl}/-/reload`);
    answered.push(reload.body.toString());
    assert.equal(reload.status, 200, reload.body.toString());

    const res = await scrape('/hw');
    assert.equal(res.status, 200, `the old password would get 401: ${res.body.toString()}`);
    assert.equal(res.body.toString(), BODY);
    assert.equal(exporter.seen.length, 1, 'the entry fetched with the old credentials must not be served after they changed');
    assert.equal(exporter.seen[0]!.authorization, `Basic ${Buffer.from(`prom:${NEW_PASSWORD}`).toString('base64')}`);

    // The pass-through route picks it up too.
    const page = await scrape('/hw-pages/metrics');
    assert.equal(page.status, 200, page.body.toString());
    assert.equal(exporter.seen.at(-1)!.authorization, `Basic ${Buffer.from(`prom:${NEW_PASSWORD}`).toString('base64')}`);
  });

  test('an upstream 401 passes through without echoing the credentials', async () => {
    exporter.password = 'something-else';
    try {
      const res = await scrape('/hw');
      assert.equal(res.status, 401);
      assert.equal(res.body.toString(), 'Unauthorized\n');
      const page = await scrape('/hw-pages/metrics');
      assert.equal(page.status, 401);
    } finally {
      exporter.password = NEW_PASSWORD;
    }
  });

  // Last: by now the proxy has logged start-up, reloads, TLS failures, 401s and pass-through.
  test('secrets appear in no answer body and no log line', () => {
    assert.ok(proxy.logs.length > 0 && fromStart.logs.length > 0, 'the test proxies captured no logs');
    assert.ok(answered.length >= 10);
    for (const body of answered) assertNoSecrets(body, `the answer ${JSON.stringify(body.slice(0, 80))}`);
    for (const line of [...fromStart.logs, ...proxy.logs]) {
      assertNoSecrets(JSON.stringify(line), `the log line ${JSON.stringify(line).slice(0, 200)}`);
    }
  });
});

describe('tls config', () => {
  test('tls on an http:// upstream is a config error at the tls key', () => {
    const yaml = `routes:
  - name: plain
    path: /plain
    upstream: http://127.0.0.1:9100/metrics
    tls: { insecure_skip_verify: true }
`;
    assert.throws(
      () => parseConfig(yaml, '/etc/scrapecache/proxy.yaml', {}),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.deepEqual(
          err.problems.map((p) => [p.line, p.message]),
          [[5, 'tls applies to https:// upstreams only']],
        );
        assert.match(err.message, /^\/etc\/scrapecache\/proxy\.yaml:5:\d+: tls applies to https:\/\/ upstreams only$/);
        return true;
      },
    );
  });
});
