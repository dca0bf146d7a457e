/**
 * The web config file (SPEC 3.6): exporter-toolkit's keys and defaults, Go's names mapped to
 * OpenSSL's, and every bad input refused with file:line:column.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { before, describe, test } from 'node:test';
import { ConfigError, formatProblem } from '../src/config/load.js';
import { loadWebConfig, parseGoDuration, parseWebConfig } from '../src/config/web-config.js';
import { htpasswdHash, makePki, missingTools, type Pki } from './helpers/pki.js';

const skip = missingTools.length > 0 ? `needs ${missingTools.join(', ')}` : false;

let pki: Pki;
let hash: string;

function write(name: string, text: string): string {
  const file = pki.path(name);
  writeFileSync(file, text);
  return file;
}

/** The problems a web config text produces, as `line:column: message`. */
function problems(text: string): string[] {
  const file = write('web.yml', text);
  try {
    loadWebConfig(file);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.map((p) => formatProblem(p).slice(file.length + 1));
  }
  return [];
}

const TLS = 'tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n';

describe('web config', { skip }, () => {
  before(() => {
    pki = makePki();
    hash = htpasswdHash('secret');
  });

  test('an empty file is valid and turns nothing on, as in the toolkit', () => {
    const config = parseWebConfig('', pki.path('empty.yml'));
    assert.equal(config.tls, undefined);
    assert.equal(config.users.size, 0);
    assert.equal(config.rateLimit, undefined);
    assert.deepEqual(config.headers, []);
  });

  test('tls_server_config defaults: TLS 1.2 to 1.3, server cipher order, no client certificate', () => {
    const config = loadWebConfig(write('web.yml', TLS));
    const tls = config.tls!;
    assert.equal(tls.options.minVersion, 'TLSv1.2');
    assert.equal(tls.options.maxVersion, 'TLSv1.3');
    assert.equal(tls.options.honorCipherOrder, true);
    assert.equal(tls.clientAuth, 'NoClientCert');
    assert.equal(tls.options.requestCert, false);
    assert.equal(tls.options.ciphers, undefined);
    assert.equal(tls.options.ecdhCurve, undefined);
    assert.equal(tls.allowedSans, null);
    assert.equal(config.http2, true);
    assert.deepEqual(config.files, [pki.path('web.yml'), pki.path('server.pem'), pki.path('server.key')]);
  });

  test('inline cert and key work like cert_file and key_file', () => {
    const indent = (pem: string) => pem.trim().split('\n').map((l) => `    ${l}`).join('\n');
    const config = loadWebConfig(
      write('web.yml', `tls_server_config:\n  cert: |\n${indent(pki.read('server.pem'))}\n  key: |\n${indent(pki.read('server.key'))}\n`),
    );
    assert.equal(config.tls!.options.cert!.toString().trim(), pki.read('server.pem').trim());
    const withCa = loadWebConfig(
      write('web.yml', `${TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca: |\n${indent(pki.read('ca.pem'))}\n`),
    );
    assert.equal(withCa.tls!.options.ca!.toString().trim(), pki.read('ca.pem').trim());
    assert.deepEqual(problems(`${TLS}  cert: x\n`), ['2:14: set cert or cert_file, not both']);
  });

  test('every Go cipher suite name maps to one OpenSSL accepts; TLS 1.3 suites stay as Go keeps them', () => {
    const names = [
      'TLS_RSA_WITH_AES_128_CBC_SHA', 'TLS_RSA_WITH_AES_256_CBC_SHA', 'TLS_RSA_WITH_AES_128_GCM_SHA256', 'TLS_RSA_WITH_AES_256_GCM_SHA384',
      'TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA', 'TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA', 'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA',
      'TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA', 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384',
      'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384', 'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256',
      'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256',
    ];
    const config = loadWebConfig(write('web.yml', `${TLS}  cipher_suites:\n${names.map((n) => `    - ${n}`).join('\n')}\n  prefer_server_cipher_suites: false\n`));
    const ciphers = config.tls!.options.ciphers!;
    assert.match(ciphers, /^AES128-SHA:AES256-SHA:AES128-GCM-SHA256:AES256-GCM-SHA384:ECDHE-ECDSA-AES128-SHA:/);
    assert.match(ciphers, /ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-CHACHA20-POLY1305:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256$/);
    for (const suite of ciphers.split(':')) assert.doesNotThrow(() => createSecureContext({ ciphers: suite }), suite);
    assert.equal(config.tls!.options.honorCipherOrder, false);
  });

  test('curve names map to OpenSSL groups in the order given', () => {
    const config = loadWebConfig(write('web.yml', `${TLS}  curve_preferences: [X25519, CurveP256, CurveP384, CurveP521]\n`));
    assert.equal(config.tls!.options.ecdhCurve, 'X25519:P-256:P-384:P-521');
  });

  test('client_auth_type maps to what Node asks and verifies; RequireClientCert is the old name of RequireAnyClientCert', () => {
    const cases: Array<[string, string, boolean, boolean]> = [
      ['RequestClientCert', 'RequestClientCert', true, false],
      ['RequireAnyClientCert', 'RequireAnyClientCert', true, false],
      ['RequireClientCert', 'RequireAnyClientCert', true, false],
      ['VerifyClientCertIfGiven', 'VerifyClientCertIfGiven', true, false],
      ['RequireAndVerifyClientCert', 'RequireAndVerifyClientCert', true, true],
    ];
    for (const [given, meaning, request, reject] of cases) {
      const tls = loadWebConfig(write('web.yml', `${TLS}  client_auth_type: ${given}\n  client_ca_file: ca.pem\n  client_allowed_sans: [prometheus.test, "::1"]\n`)).tls!;
      assert.equal(tls.clientAuth, meaning);
      assert.equal(tls.options.requestCert, request, given);
      assert.equal(tls.options.rejectUnauthorized, reject, given);
      assert.ok(tls.options.ca);
      assert.deepEqual([...tls.allowedSans!], ['prometheus.test', '::1']);
    }
  });

  test('min_version and max_version take the toolkit names', () => {
    const tls = loadWebConfig(write('web.yml', `${TLS}  min_version: TLS13\n  max_version: TLS13\n`)).tls!;
    assert.equal(tls.options.minVersion, 'TLSv1.3');
    assert.equal(tls.options.maxVersion, 'TLSv1.3');
  });

  test('headers, users and rate_limit are read as given; a blank header value sets nothing', () => {
    const config = loadWebConfig(
      write(
        'web.yml',
        `http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: sameorigin\n    X-Content-Type-Options: nosniff\n    Strict-Transport-Security: max-age=31536000\n    Content-Security-Policy: ""\n` +
          `basic_auth_users:\n  prom: '${hash}'\nrate_limit:\n  interval: 1.5s\n  burst: 3\n`,
      ),
    );
    assert.deepEqual(config.headers, [
      ['X-Frame-Options', 'sameorigin'],
      ['X-Content-Type-Options', 'nosniff'],
      ['Strict-Transport-Security', 'max-age=31536000'],
    ]);
    assert.equal(config.users.get('prom'), hash);
    assert.deepEqual(config.rateLimit, { intervalMs: 1500, burst: 3 });
    assert.equal(config.http2, false);
  });

  test('rate_limit interval takes Go durations; 0 turns the limit off', () => {
    assert.equal(parseGoDuration('100ms'), 100);
    assert.equal(parseGoDuration('1m30s'), 90_000);
    assert.equal(parseGoDuration('0.5s'), 500);
    assert.equal(parseGoDuration('1d'), 86_400_000);
    assert.equal(parseGoDuration('1 s'), undefined);
    assert.equal(loadWebConfig(write('web.yml', 'rate_limit:\n  interval: 0\n  burst: 5\n')).rateLimit, undefined);
  });

  test('every bad input is refused with its line and column', () => {
    const cases: Array<[string, Array<string | RegExp>]> = [
      ['tls_server_config:\n  cert_file: server.pem\n  key_fil: server.key\n', ['3:3: unknown key "key_fil" in tls_server_config']],
      ['basic_auth_user:\n  a: b\n', ['1:1: unknown key "basic_auth_user" in the top level']],
      ['tls_server_config:\n  cert_file: server.pem\n', ['2:3: tls_server_config: missing one of key or key_file']],
      ['tls_server_config:\n  cert_file: server.pem\n  key_file: nowhere.key\n', [`3:13: cannot read key_file ${pki?.path('nowhere.key')}: ENOENT`]],
      ['tls_server_config:\n  cert_file: server.pem\n  key_file: client.key\n', [/^2:3: tls_server_config: .*key values mismatch \(do cert and key belong together\?\)$/]],
      [`${TLS}  client_ca_file: ca.pem\n`, ['4:19: a client CA is configured without a client_auth_type that asks for client certificates (e.g. RequireAndVerifyClientCert)']],
      [`${TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.key\n`, [/^5:19: the client CA is not a PEM certificate: /]],
      [`${TLS}  client_auth_type: VerifyClientCert\n`, ['4:21: tls_server_config.client_auth_type: expected one of NoClientCert, RequestClientCert, RequireAnyClientCert, RequireClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert']],
      [`${TLS}  min_version: TLS1.2\n`, ['4:16: tls_server_config.min_version: unknown TLS version (TLS10, TLS11, TLS12, TLS13)']],
      [`${TLS}  min_version: TLS13\n  max_version: TLS12\n`, ['4:16: min_version TLS13 is above max_version TLS12']],
      [`${TLS}  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n`, ['4:19: tls_server_config.cipher_suites[0]: unknown cipher suite (Go crypto/tls names)']],
      [`${TLS}  curve_preferences: [P-256]\n`, ['4:23: tls_server_config.curve_preferences[0]: unknown curve (CurveP256, CurveP384, CurveP521, X25519)']],
      ['basic_auth_users:\n  prom: secret\n', [`2:9: the password of "prom" is not a bcrypt hash (make one with: htpasswd -nBC 10 "" | tr -d ':\\n')`]],
      ['basic_auth_users:\n  prom: $2y$03$abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyza\n', [`2:9: the password of "prom" is not a bcrypt hash (make one with: htpasswd -nBC 10 "" | tr -d ':\\n')`]],
      ['http_server_config:\n  headers:\n    Server: scrapecache\n', ['3:5: HTTP header "Server" can not be configured (allowed: Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, Content-Security-Policy)']],
      ['http_server_config:\n  headers:\n    X-Frame-Options: allow\n', ['3:22: invalid value for X-Frame-Options: expected one of deny, sameorigin, got "allow"']],
      ['http_server_config:\n  http2: yes please\n', ['2:10: http_server_config.http2: Invalid input: expected boolean, received string']],
      ['rate_limit:\n  interval: 1s\n', ['2:3: rate_limit: burst must be at least 1 when interval is set (0 would refuse every request)']],
      ['rate_limit:\n  interval: soon\n  burst: 2\n', ['2:13: rate_limit.interval: invalid duration "soon" (expected e.g. 100ms, 1s, 1m30s)']],
      ['tls_server_config: [\n', ['2:1: Flow sequence in block collection must be sufficiently indented and end with a ]']],
    ];
    for (const [text, expected] of cases) {
      const got = problems(text);
      assert.equal(got.length, expected.length, `${text}: ${got.join('; ')}`);
      // OpenSSL's own words differ between the versions Node 20 and 24 bundle.
      expected.forEach((e, i) => (typeof e === 'string' ? assert.equal(got[i], e, text) : assert.match(got[i]!, e, text)));
    }
  });

  test('an unreadable web config file is refused with its name', () => {
    assert.throws(() => loadWebConfig(pki.path('missing.yml')), (err: ConfigError) => {
      assert.equal(formatProblem(err.problems[0]!), `${pki.path('missing.yml')}: cannot read web config: no such file`);
      return true;
    });
  });
});
