// proxy.yaml (SPEC 2): units, environment expansion, defaults, referenced files, and the exact
// file:line:column errors for the bad configs in test/fixtures/config/.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, formatProblem, loadConfig, parseConfig } from '../src/config/load.js';
import type { Config } from '../src/config/types.js';
import { parseDuration, parseSize } from '../src/config/units.js';

// dist/test/config.test.js -> the repository root (fixtures are not compiled, they stay in test/)
const root = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = join(root, 'test/fixtures/config');

const temps: string[] = [];
after(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'scrapecache-config-test-'));
  temps.push(dir);
  return dir;
}

const ROUTE = 'routes:\n  - name: node\n    path: /node/metrics\n    upstream: http://127.0.0.1:9100/metrics\n';

function parse(yaml: string, env: NodeJS.ProcessEnv = {}): Config {
  return parseConfig(yaml, 'inline.yaml', env);
}

/** The problems a config text produces, formatted `file:line:column: message`. */
function problems(yaml: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parse(yaml, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.problems.map(formatProblem);
  }
  assert.fail('the config was accepted');
}

describe('durations', () => {
  it('parses Prometheus durations into milliseconds', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration('6h'), 6 * 3600_000);
    assert.equal(parseDuration('1h30m'), 5400_000);
    assert.equal(parseDuration('7d'), 7 * 86400_000);
    assert.equal(parseDuration('1w'), 7 * 86400_000);
    assert.equal(parseDuration('1d2h3m4s5ms'), 86400_000 + 2 * 3600_000 + 3 * 60_000 + 4000 + 5);
    assert.equal(parseDuration('0'), 0);
    assert.equal(parseDuration('0s'), 0);
  });

  it('rejects what Prometheus rejects: unknown units, words, signs, units out of order, empty', () => {
    for (const text of ['1x', '5 minutes', '-1s', '1m1h', '30', '1.5h', '5M', '', ' 5m', '1s500']) {
      assert.equal(parseDuration(text), undefined, JSON.stringify(text));
    }
  });

  it('reads durations in the config as milliseconds', () => {
    const route = parse(`${ROUTE}    ttl: 1h30m\n    timeout: 500ms\n    stale_if_error: 7d\n`).routes[0]!;
    assert.equal(route.ttlMs, 5400_000);
    assert.equal(route.timeoutMs, 500);
    assert.equal(route.staleIfErrorMs, 7 * 86400_000);
  });

  it('accepts a bare 0 as a duration in the config, as Prometheus does', () => {
    const config = parse(`defaults:\n  stale_while_revalidate: 0\n  stale_if_error: 0\n${ROUTE}    stale_if_error: 0\n`);
    assert.equal(config.routes[0]!.staleWhileRevalidateMs, 0);
    assert.equal(config.routes[0]!.staleIfErrorMs, 0);
  });

  it('rejects an invalid duration naming the key and the value', () => {
    assert.deepEqual(problems(`${ROUTE}    ttl: 1x\n`), [
      'inline.yaml:5:10: routes[0].ttl: invalid duration "1x" (expected e.g. 500ms, 30s, 5m, 1h30m, 7d)',
    ]);
  });
});

describe('sizes', () => {
  it('reads binary units as powers of 1024 and decimal units as powers of 1000', () => {
    assert.equal(parseSize('512B'), 512);
    assert.equal(parseSize('64KiB'), 64 * 1024);
    assert.equal(parseSize('256MiB'), 256 * 1024 ** 2);
    assert.equal(parseSize('2GiB'), 2 * 1024 ** 3);
    assert.equal(parseSize('10KB'), 10_000);
    assert.equal(parseSize('10MB'), 10_000_000);
    assert.equal(parseSize('1GB'), 1_000_000_000);
  });

  it('reads a bare integer as bytes, written as a YAML number or a string', () => {
    assert.equal(parseSize(1024), 1024);
    assert.equal(parseSize('1024'), 1024);
    assert.equal(parseSize(0), 0);
  });

  it('rejects negative, fractional-byte, unit-less and unknown-unit sizes', () => {
    for (const value of ['-1', 'MiB', '1TB', '64mb', '1 megabyte', '', -1, 1.5]) {
      assert.equal(parseSize(value), undefined, JSON.stringify(value));
    }
  });

  it('reads sizes in the config as bytes', () => {
    const config = parse(`cache:\n  max_bytes: 1GB\ndefaults:\n  max_body_bytes: 2048\n${ROUTE}`);
    assert.equal(config.cache.maxBytes, 1_000_000_000);
    assert.equal(config.routes[0]!.maxBodyBytes, 2048);
  });
});

describe('environment expansion', () => {
  const withHeader = (value: string) => `${ROUTE}    headers: { X-Test: "${value}" }\n`;

  it('replaces ${VAR} with the variable', () => {
    const config = parse(withHeader('${SCOPE}'), { SCOPE: 'hardware' });
    assert.equal(config.routes[0]!.headers['X-Test'], 'hardware');
  });

  it('uses the default of ${VAR:-default} only when the variable is unset or empty', () => {
    assert.equal(parse(withHeader('${SCOPE:-fallback}'), {}).routes[0]!.headers['X-Test'], 'fallback');
    assert.equal(parse(withHeader('${SCOPE:-fallback}'), { SCOPE: '' }).routes[0]!.headers['X-Test'], 'fallback');
    assert.equal(parse(withHeader('${SCOPE:-fallback}'), { SCOPE: 'set' }).routes[0]!.headers['X-Test'], 'set');
  });

  it('expands before parsing, so a variable can supply any part of a value', () => {
    const config = parse('routes:\n  - name: node\n    path: /node/metrics\n    upstream: http://${HOST}:${PORT:-9100}/metrics\n', {
      HOST: 'exporter.example',
    });
    assert.equal(config.routes[0]!.upstream.href, 'http://exporter.example:9100/metrics');
  });

  it('reports an unset variable without a default by name, at its line and column', () => {
    assert.deepEqual(problems(withHeader('${NOT_SET_ANYWHERE}')), [
      'inline.yaml:5:25: environment variable NOT_SET_ANYWHERE is not set (write ${NOT_SET_ANYWHERE:-default} to give a default)',
    ]);
  });

  it('reports every unset variable, not only the first', () => {
    const lines = problems(`admin:\n  token: \${FIRST_UNSET}\n${ROUTE}    headers: { X-Test: "\${SECOND_UNSET}" }\n`);
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^inline\.yaml:2:10: environment variable FIRST_UNSET is not set/);
    assert.match(lines[1]!, /^inline\.yaml:7:25: environment variable SECOND_UNSET is not set/);
  });

  it('reads $$ as a literal $ and does not expand what follows it', () => {
    const config = parse(withHeader('cost $$5 and $${HOME}'), { HOME: '/root' });
    assert.equal(config.routes[0]!.headers['X-Test'], 'cost $5 and ${HOME}');
  });

  it('leaves comments alone: a commented-out line naming an unset variable is no error', () => {
    const config = parse(`# token: \${NOT_SET_ANYWHERE}\n${ROUTE}    headers: { X-Test: "a # \${SCOPE}" } # was \${ALSO_UNSET}\n`, { SCOPE: 'hw' });
    assert.equal(config.routes[0]!.headers['X-Test'], 'a # hw', 'a # inside a quoted value is not a comment');
  });

  it('refuses a timeout longer than a timer can wait (24d)', () => {
    assert.deepEqual(problems(`${ROUTE}    timeout: 25d\n`), ['inline.yaml:5:14: timeout must be at most 24d']);
  });

  it('expands an empty admin token to no token', () => {
    assert.equal(parse(`admin:\n  token: \${TOKEN:-}\n${ROUTE}`).admin.token, '');
    assert.equal(parse(`admin:\n  token: \${TOKEN:-}\n${ROUTE}`, { TOKEN: 's3cret' }).admin.token, 's3cret');
  });
});

describe('defaults', () => {
  const yaml = `defaults:
  ttl: 2m
  timeout: 10s
  max_body_bytes: 1MiB
  stale_while_revalidate: 15s
  stale_if_error: 1h
routes:
  - name: inherits
    path: /a
    upstream: http://127.0.0.1:9100/a
  - name: overrides
    path: /b
    upstream: http://127.0.0.1:9100/b
    ttl: 30s
    timeout: 5m
    max_body_bytes: 10MB
    stale_while_revalidate: 1s
    stale_if_error: 24h
`;

  it('gives every route the defaults it does not set', () => {
    const route = parse(yaml).routes[0]!;
    assert.equal(route.ttlMs, 120_000);
    assert.equal(route.timeoutMs, 10_000);
    assert.equal(route.maxBodyBytes, 1024 * 1024);
    assert.equal(route.staleWhileRevalidateMs, 15_000);
    assert.equal(route.staleIfErrorMs, 3600_000);
  });

  it('lets a route override each default for itself only', () => {
    const route = parse(yaml).routes[1]!;
    assert.equal(route.ttlMs, 30_000);
    assert.equal(route.timeoutMs, 300_000);
    assert.equal(route.maxBodyBytes, 10_000_000);
    assert.equal(route.staleWhileRevalidateMs, 1000);
    assert.equal(route.staleIfErrorMs, 24 * 3600_000);
  });

  it('uses the documented defaults when the file sets none', () => {
    const config = parse(ROUTE);
    const route = config.routes[0]!;
    assert.deepEqual(config.listen, { host: '0.0.0.0', port: 9180 });
    assert.deepEqual(config.admin, { listen: { host: '127.0.0.1', port: 9181 }, token: '', allowedHosts: [] });
    assert.equal(config.log.level, 'info');
    assert.equal(config.workers, 1);
    assert.equal(config.cache.maxBytes, 256 * 1024 * 1024);
    assert.equal(route.ttlMs, 60_000);
    assert.equal(route.timeoutMs, 30_000);
    assert.equal(route.maxBodyBytes, 64 * 1024 * 1024);
    assert.equal(route.staleWhileRevalidateMs, 0);
    assert.equal(route.staleIfErrorMs, 0);
    assert.equal(route.prefetch, false);
    assert.equal(route.cache, true);
    assert.equal(route.queryKeys, null);
  });
});

describe('files a route refers to', () => {
  // The config lives in its own directory; the test process runs elsewhere (the repo root).
  function configDir(): string {
    const dir = tempDir();
    mkdirSync(join(dir, 'secrets'));
    writeFileSync(join(dir, 'secrets/password'), 'pa55word\n');
    writeFileSync(join(dir, 'secrets/token'), 'tok-123\n');
    writeFileSync(join(dir, 'ca.pem'), 'CA BYTES');
    writeFileSync(join(dir, 'c.pem'), 'CERT BYTES');
    writeFileSync(join(dir, 'k.pem'), 'KEY BYTES');
    return dir;
  }

  it('reads basic_auth password_file relative to the config file and sends it as Basic auth', () => {
    const dir = configDir();
    const file = join(dir, 'proxy.yaml');
    writeFileSync(file, `${ROUTE}    basic_auth: { username: prom, password_file: secrets/password }\n`);
    const route = loadConfig(file, {}).routes[0]!;
    assert.equal(route.headers['authorization'], `Basic ${Buffer.from('prom:pa55word').toString('base64')}`);
  });

  it('reads admin.token_file relative to the config file, so the admin token need not sit in proxy.yaml', () => {
    const dir = configDir();
    const file = join(dir, 'proxy.yaml');
    writeFileSync(file, `admin:\n  token_file: secrets/token\n${ROUTE}`);
    assert.equal(loadConfig(file, {}).admin.token, 'tok-123');
  });

  it('refuses admin.token_file beside admin.token, an empty one and a missing one, with line and column', () => {
    const dir = configDir();
    writeFileSync(join(dir, 'secrets/empty'), '\n');
    const file = join(dir, 'proxy.yaml');
    const refusal = (admin: string) => {
      writeFileSync(file, `admin:\n${admin}${ROUTE}`);
      try {
        loadConfig(file, {});
      } catch (err) {
        return (err as ConfigError).problems.map((p) => `${p.line}:${p.column}: ${p.message}`);
      }
      return [];
    };
    assert.deepEqual(refusal('  token: abc\n  token_file: secrets/token\n'), ['3:15: set admin.token or admin.token_file, not both']);
    assert.deepEqual(refusal('  token_file: secrets/empty\n'), [`2:15: ${join(dir, 'secrets/empty')} is empty: leave admin.token_file out for no token`]);
    assert.deepEqual(refusal('  token_file: secrets/none\n'), [`2:15: cannot read ${join(dir, 'secrets/none')}: ENOENT`]);
  });

  it('reads bearer_token_file relative to the config file and sends it as a Bearer token', () => {
    const dir = configDir();
    const file = join(dir, 'proxy.yaml');
    writeFileSync(file, `${ROUTE}    bearer_token_file: secrets/token\n`);
    assert.equal(loadConfig(file, {}).routes[0]!.headers['authorization'], 'Bearer tok-123');
  });

  it('resolves a relative config path and its files from the config directory, not the working directory', () => {
    const dir = configDir();
    const file = join(dir, 'proxy.yaml');
    writeFileSync(file, `${ROUTE}    bearer_token_file: secrets/token\n`);
    const fromCwd = relative(process.cwd(), file);
    assert.equal(loadConfig(fromCwd, {}).routes[0]!.headers['authorization'], 'Bearer tok-123');
  });

  it('reads tls ca_file, cert_file and key_file relative to the config file', () => {
    const dir = configDir();
    const file = join(dir, 'proxy.yaml');
    writeFileSync(
      file,
      'routes:\n  - name: hw\n    path: /hw\n    upstream: https://10.0.0.5:9400/metrics\n' +
        '    tls: { ca_file: ca.pem, cert_file: c.pem, key_file: k.pem, server_name: hw }\n',
    );
    const tls = loadConfig(file, {}).routes[0]!.tls;
    assert.ok(tls);
    assert.equal(tls.ca?.toString(), 'CA BYTES');
    assert.equal(tls.cert?.toString(), 'CERT BYTES');
    assert.equal(tls.key?.toString(), 'KEY BYTES');
    assert.equal(tls.serverName, 'hw');
    assert.equal(tls.insecureSkipVerify, false);
  });

  it('accepts absolute paths to referenced files', () => {
    const dir = configDir();
    const file = join(tempDir(), 'proxy.yaml');
    writeFileSync(file, `${ROUTE}    basic_auth: { username: prom, password_file: ${join(dir, 'secrets/password')} }\n`);
    assert.equal(loadConfig(file, {}).routes[0]!.headers['authorization'], `Basic ${Buffer.from('prom:pa55word').toString('base64')}`);
  });
});

describe('shipped and documented configs', () => {
  it('validates the shipped proxy.yaml', () => {
    const config = loadConfig(join(root, 'proxy.yaml'), {});
    assert.ok(config.routes.length > 0);
    assert.equal(config.admin.token, '');
    assert.equal(loadConfig(join(root, 'proxy.yaml'), { SCRAPECACHE_ADMIN_TOKEN: 'abc' }).admin.token, 'abc');
  });

  it('accepts every key of the SPEC 2 example', () => {
    const dir = tempDir();
    for (const name of ['ca.pem', 'c.pem', 'k.pem', 'hw-password']) writeFileSync(join(dir, name), `${name}\n`);
    const file = join(dir, 'proxy.yaml');
    writeFileSync(
      file,
      `listen: 0.0.0.0:9180
workers: 1
admin:
  listen: 127.0.0.1:9181
  token: \${SCRAPECACHE_ADMIN_TOKEN:-}
log:
  level: info
cache:
  max_bytes: 256MiB
defaults:
  ttl: 1m
  timeout: 30s
  max_body_bytes: 64MiB
  stale_while_revalidate: 0s
  stale_if_error: 0s
routes:
  - name: node
    path: /node/metrics
    upstream: http://127.0.0.1:9100/metrics
    ttl: 30s
  - name: blackbox
    path: /probe
    upstream: http://127.0.0.1:9115/probe
    ttl: 1m
    query_keys: [target, module]
  - name: slow-hardware
    path: /hardware/metrics
    upstream: https://10.0.0.5:9400/metrics
    ttl: 6h
    timeout: 5m
    prefetch: true
    stale_if_error: 24h
    headers: { X-Scope: hw }
    tls: { ca_file: ca.pem, cert_file: c.pem, key_file: k.pem, server_name: hw, insecure_skip_verify: false }
    basic_auth: { username: prom, password_file: hw-password }
  - name: exporter-pages
    path_prefix: /pages/
    upstream: http://127.0.0.1:9100/
    cache: false
`,
    );
    const config = loadConfig(file, {});
    assert.deepEqual(
      config.routes.map((r) => r.name),
      ['node', 'blackbox', 'slow-hardware', 'exporter-pages'],
    );
    const [node, blackbox, hw, pages] = config.routes;
    assert.equal(node!.path, '/node/metrics');
    assert.deepEqual([...blackbox!.queryKeys!], ['target', 'module']);
    assert.equal(hw!.prefetch, true);
    assert.equal(hw!.timeoutMs, 300_000);
    assert.equal(hw!.staleIfErrorMs, 24 * 3600_000);
    assert.equal(hw!.headers['X-Scope'], 'hw');
    assert.equal(hw!.headers['authorization'], `Basic ${Buffer.from('prom:hw-password').toString('base64')}`);
    assert.equal(hw!.tls?.serverName, 'hw');
    assert.equal(pages!.pathPrefix, '/pages/');
    assert.equal(pages!.path, undefined);
    assert.equal(pages!.cache, false);
  });
});

describe('bad-config fixtures', () => {
  // Each fixture test/fixtures/config/bad-NAME.yaml is paired with bad-NAME.expected: the exact
  // `file:line:column: message` lines it must produce, in order. Paths are shown relative to the
  // fixture directory so the lines do not depend on where the repository is checked out.
  const sentences: Record<string, string> = {
    'bad-unknown-key-top': 'rejects an unknown top-level key, pointing at the key',
    'bad-unknown-key-route': 'rejects an unknown key inside a route, pointing at the key',
    'bad-unknown-key-tls': 'rejects an unknown key inside tls, pointing at the key',
    'bad-duplicate-route-name': 'rejects a duplicate route name at the second use',
    'bad-duplicate-path': 'rejects a duplicate path and a duplicate path_prefix at the second use',
    'bad-duplicate-yaml-key': 'rejects a key written twice in one mapping instead of letting the last win',
    'bad-path-and-path-prefix': 'rejects a route with both path and path_prefix',
    'bad-no-path': 'rejects a route with neither path nor path_prefix',
    'bad-upstream-scheme': 'rejects upstreams that are not http or https',
    'bad-duration': 'rejects durations in words, with a sign, or with units out of order',
    'bad-size': 'rejects sizes with an unknown unit or the wrong case',
    'bad-yaml-syntax': 'reports a YAML syntax error with its position',
    'bad-empty': 'rejects an empty file',
    'bad-prefetch-without-cache': 'rejects prefetch on a route with cache: false',
    'bad-format': 'rejects a format other than text, openmetrics or protobuf, in defaults and in a route',
    'bad-format-without-cache': 'rejects format on a route with cache: false, but lets such routes ignore defaults.format',
    'bad-basic-auth-password-and-file': 'rejects basic_auth with both password and password_file',
    'bad-password-file-missing': 'rejects a password_file that cannot be read, naming it',
    'bad-env-unset': 'names every unset environment variable at the column of its ${',
    'bad-env-columns': 'points at the columns as written even after a longer or shorter ${VAR} earlier on the line',
    'bad-env-yaml-syntax': 'points a YAML syntax error at the column as written after a ${VAR} expanded on the line',
    'bad-redis-url': 'rejects a cache.redis.url that is not redis:// or rediss://',
    'bad-redis-values': 'rejects a Redis database that is not a number, a key_prefix that is not a string and an unknown key in cache.redis',
    'bad-two-second-levels': 'rejects cache.disk and cache.redis together: there is one second level',
    'bad-redis-checks': 'rejects a Redis password given twice or unreadable, tls without rediss:// and a Redis timeout over a minute',
    'bad-overrides-schema': 'rejects an override with an unknown key, an empty value list, a bad duration or a query that is not a mapping',
    'bad-overrides': 'rejects overrides that could never match (a parameter outside query_keys, no parameter), that set nothing, or on a pass-through route',
  };
  // Longer and shorter than the `${NAME}` text that refers to them. Nothing else is set.
  const env = { LONG_NAME: 'a-route-name-much-longer-than-the-reference', SHORT_NAME: 'b' };

  function producedLines(fixture: string): string[] {
    try {
      loadConfig(join(fixtures, fixture), env);
    } catch (err) {
      assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
      return err.problems.map((p) =>
        formatProblem({ ...p, file: relative(fixtures, p.file), message: p.message.split(`${fixtures}/`).join('') }),
      );
    }
    assert.fail(`${fixture} was accepted`);
  }

  const files = readdirSync(fixtures);
  const names = files.filter((f) => /^bad-.*\.yaml$/.test(f)).map((f) => f.slice(0, -'.yaml'.length));

  it('has a behaviour sentence and an .expected file for every fixture', () => {
    assert.deepEqual([...names].sort(), Object.keys(sentences).sort());
    for (const name of names) assert.ok(files.includes(`${name}.expected`), `${name}.expected is missing`);
  });

  for (const name of names) {
    it(sentences[name] ?? name, () => {
      const expected = readFileSync(join(fixtures, `${name}.expected`), 'utf8').split('\n').filter((l) => l !== '');
      assert.ok(expected.length > 0, `${name}.expected is empty`);
      assert.deepEqual(producedLines(`${name}.yaml`), expected);
    });
  }
});

describe('reporting every problem', () => {
  it('reports every schema problem of a file in one run, in file order', () => {
    const lines = problems(
      'listen: nowhere\nroutes:\n  - name: a\n    path: /a\n    upstream: http://h/\n    ttl: 5x\n  - name: b\n    path: /b\n    upstream: ftp://h/\n    bogus: 2\n',
    );
    assert.deepEqual(lines, [
      'inline.yaml:1:9: listen: invalid listen address "nowhere" (expected host:port, e.g. 0.0.0.0:9180 or [::1]:9180)',
      'inline.yaml:6:10: routes[0].ttl: invalid duration "5x" (expected e.g. 500ms, 30s, 5m, 1h30m, 7d)',
      'inline.yaml:9:15: routes[1].upstream: upstream must be http:// or https://, got "ftp:"',
      'inline.yaml:10:5: unknown key "bogus" in routes[1]',
    ]);
  });

  it('reports every cross-route problem of a file in one run', () => {
    const lines = problems(
      'routes:\n  - name: a\n    path: /a\n    upstream: http://h/\n  - name: a\n    path: /a\n    upstream: http://h/\n    cache: false\n    prefetch: true\n',
    );
    assert.deepEqual(lines, [
      'inline.yaml:5:11: duplicate route name "a" (also routes[0])',
      'inline.yaml:6:11: duplicate path /a (also routes[0])',
      'inline.yaml:9:15: prefetch needs a cached route (cache: false is set)',
    ]);
  });

  it(
    'reports a duplicate route name in the same run as an unknown key elsewhere',
    () => {
      const lines = problems(
        'routes:\n  - name: a\n    path: /a\n    upstream: http://h/\n    bogus: 1\n  - name: b\n    path: /b\n    upstream: http://h/\n  - name: b\n    path: /c\n    upstream: http://h/\n',
      );
      assert.deepEqual(lines, ['inline.yaml:5:5: unknown key "bogus" in routes[0]', 'inline.yaml:9:11: duplicate route name "b" (also routes[1])']);
    },
  );
});

describe('YAML aliases', () => {
  function configError(yaml: string): ConfigError {
    try {
      parse(yaml);
    } catch (err) {
      assert.ok(err instanceof ConfigError, `expected a ConfigError with file:line:column, got ${String(err)}`);
      return err;
    }
    assert.fail('the config was accepted');
  }

  it('accepts an alias to an anchor defined earlier', () => {
    const config = parse(`defaults:\n  ttl: &short 15s\n${ROUTE}    timeout: *short\n`);
    assert.equal(config.routes[0]!.timeoutMs, 15_000);
  });

  it(
    'reports an alias to an undefined anchor as a config problem at the alias',
    () => {
      const error = configError(`admin:\n  token: *nope\n${ROUTE}`);
      assert.equal(error.problems.length, 1);
      const [p] = error.problems;
      assert.equal(`${p!.line}:${p!.column}`, '2:10');
      assert.match(p!.message, /nope/);
    },
  );

  it(
    'reports an alias bomb as a config problem instead of crashing',
    () => {
      const bomb =
        'a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n' +
        'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n';
      const error = configError(bomb + ROUTE);
      assert.ok(error.problems.length >= 1);
      assert.match(error.problems[0]!.message, /alias/i);
    },
  );
});
