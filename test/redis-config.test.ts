// cache.redis in proxy.yaml (SPEC 2.2): what it parses to, how --check-config refuses bad values,
// and credentials that reach Redis but never a log line or /cache.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { parseConfig } from '../src/config/load.js';
import { startFakeExporter } from './helpers/fake-exporter.js';
import { get, post, SCRAPE_HEADERS, startProxy } from './helpers/proxy.js';
import { startRedis } from './helpers/redis-server.js';
import { until } from './helpers/replicas.js';

const cli = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'scrapecache-redis-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const ROUTES = 'routes:\n  - name: node\n    path: /node/metrics\n    upstream: http://127.0.0.1:9100/metrics\n';

describe('cache.redis settings', () => {
  it('takes credentials out of the URL, so that the URL kept for logs has none', () => {
    const config = parseConfig(`cache:\n  redis:\n    url: redis://scraper:s%3Acret@redis.example:6380/3\n${ROUTES}`, join(dir, 'p.yaml'));
    const redis = config.cache.redis!;
    assert.equal(redis.url, 'redis://redis.example:6380/3');
    assert.deepEqual([redis.host, redis.port, redis.database, redis.username, redis.password], ['redis.example', 6380, 3, 'scraper', 's:cret']);
    assert.equal(redis.tls, undefined);
  });

  it('defaults to port 6379, database 0, prefix "scrapecache:" and a 250ms timeout', () => {
    const redis = parseConfig(`cache:\n  redis:\n    url: redis://[::1]\n${ROUTES}`, join(dir, 'p.yaml')).cache.redis!;
    assert.deepEqual([redis.host, redis.port, redis.database, redis.keyPrefix, redis.timeoutMs], ['::1', 6379, 0, 'scrapecache:', 250]);
  });

  it('reads password_file next to the config, trimmed, and TLS files for rediss://', () => {
    writeFileSync(join(dir, 'redis-password'), 'from-a-file\n');
    writeFileSync(join(dir, 'ca.pem'), 'CA');
    const redis = parseConfig(
      `cache:\n  redis:\n    url: rediss://redis:6379/0\n    username: u\n    password_file: redis-password\n    tls: { ca_file: ca.pem, server_name: redis.internal }\n    timeout: 1s\n${ROUTES}`,
      join(dir, 'p.yaml'),
    ).cache.redis!;
    assert.equal(redis.password, 'from-a-file');
    assert.equal(redis.username, 'u');
    assert.equal(redis.tls?.ca?.toString(), 'CA');
    assert.equal(redis.tls?.serverName, 'redis.internal');
    assert.equal(redis.tls?.insecureSkipVerify, false);
    assert.equal(redis.timeoutMs, 1000);
  });
});

describe('--check-config with cache.redis', () => {
  it('exits 1 naming file:line:column for a bad Redis URL, and never prints the password from it', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, `cache:\n  redis:\n    url: redis://:hunter2@127.0.0.1:6379/db\n    timeout: 0s\n${ROUTES}`);
    const r = spawnSync(process.execPath, [cli, '--config.file', file, '--check-config'], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.deepEqual(r.stderr.trim().split('\n'), [`${file}:3:10: cache.redis.url: Redis URL path must be a database number such as /0, got "/db"`, '1 problem found']);
    assert.doesNotMatch(r.stderr + r.stdout, /hunter2/);
  });

  it('passes a good cache.redis without connecting to Redis', () => {
    const file = join(dir, 'good.yaml');
    writeFileSync(file, `cache:\n  redis:\n    url: redis://127.0.0.1:1/0\n${ROUTES}`);
    const r = spawnSync(process.execPath, [cli, '--config.file', file, '--check-config'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });
});

describe('Redis credentials', () => {
  it('authenticates with the password from password_file, which appears in no log line and not in /cache', async () => {
    const redis = await startRedis();
    const exporter = await startFakeExporter();
    const password = 'pw-7f3a9c1e';
    await redis.command('CONFIG', 'SET', 'requirepass', password);
    redis.password = password;
    const file = join(dir, 'secret');
    writeFileSync(file, `${password}\n`);
    const proxy = await startProxy(
      `cache:\n  redis:\n    url: redis://127.0.0.1:${redis.port}/0\n    password_file: ${file}\nroutes:\n  - name: node\n    path: /node/metrics\n    upstream: ${exporter.url}/metrics\n`,
    );
    try {
      await until('Redis is up for the proxy', async () => /scrapecache_store_up\{store="redis"\} 1/.test((await get(`${proxy.adminUrl}/metrics`)).body.toString()));
      assert.equal((await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS)).status, 200);
      // The record and the probe key: written over the authenticated connection.
      await until('the record is in Redis', async () => /e:node/.test(await redis.command('KEYS', 'scrapecache:e:*')));
      const listing = (await get(`${proxy.adminUrl}/cache`)).body.toString();
      assert.doesNotMatch(listing + JSON.stringify(proxy.logs), new RegExp(password));
    } finally {
      await proxy.close();
      await Promise.all([redis.close(), exporter.close()]);
    }
  });

  it('needs no more than the README says: an ACL user with GET SET DEL EVAL SCAN PUBLISH SUBSCRIBE on its prefix', async () => {
    const redis = await startRedis();
    const exporter = await startFakeExporter();
    await redis.command('ACL', 'SETUSER', 'scraper', 'on', '>pw-acl', '~scrapecache:*', '&scrapecache:*', '-@all', '+get', '+set', '+del', '+eval', '+scan', '+publish', '+subscribe');
    const file = join(dir, 'acl-secret');
    writeFileSync(file, 'pw-acl');
    const proxy = await startProxy(
      `cache:\n  redis:\n    url: redis://127.0.0.1:${redis.port}/0\n    username: scraper\n    password_file: ${file}\nroutes:\n  - name: node\n    path: /node/metrics\n    upstream: ${exporter.url}/metrics\n`,
    );
    try {
      await until('Redis is up for the proxy', async () => /scrapecache_store_up\{store="redis"\} 1/.test((await get(`${proxy.adminUrl}/metrics`)).body.toString()));
      assert.equal((await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS)).status, 200);
      await until('the record is in Redis', async () => /e:node/.test(await redis.command('KEYS', 'scrapecache:e:*')));
      const invalidated = await post(`${proxy.adminUrl}/invalidate`, { route: 'node' });
      assert.deepEqual(JSON.parse(invalidated.body.toString()), { invalidated: 1 });
      assert.equal(await redis.command('KEYS', 'scrapecache:[el]:*'), '*0\r\n', 'no record and no lease is left');
      const metrics = (await get(`${proxy.adminUrl}/metrics`)).body.toString();
      assert.doesNotMatch(metrics, /scrapecache_store_operations_total\{[^}]*result="error"\}/);
    } finally {
      await proxy.close();
      await Promise.all([redis.close(), exporter.close()]);
    }
  });
});

describe('Redis over TLS', () => {
  it('shares over rediss:// with the CA and server name from tls, and goes on alone when the certificate is not trusted', async () => {
    const pki = join(dir, 'pki');
    mkdirSync(pki);
    const ssl = (...args: string[]) => assert.equal(spawnSync('openssl', args, { cwd: pki }).status, 0, `openssl ${args[0]}`);
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=scrapecache test CA');
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other.key', '-out', 'other.pem', '-days', '2', '-subj', '/CN=other CA');
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'redis.key', '-out', 'redis.csr', '-subj', '/CN=redis.test');
    writeFileSync(join(pki, 'ext'), 'subjectAltName=DNS:redis.test\n');
    ssl('x509', '-req', '-in', 'redis.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'redis.pem', '-days', '2', '-extfile', 'ext');
    const redis = await startRedis({ tls: { cert: join(pki, 'redis.pem'), key: join(pki, 'redis.key'), ca: join(pki, 'ca.pem') } });
    const exporter = await startFakeExporter();
    const yaml = (ca: string) =>
      `cache:\n  redis:\n    url: rediss://127.0.0.1:${redis.tlsPort}/0\n    tls: { ca_file: ${join(pki, ca)}, server_name: redis.test }\nroutes:\n  - name: node\n    path: /node/metrics\n    upstream: ${exporter.url}/metrics\n`;
    const storeUp = async (adminUrl: string) => /scrapecache_store_up\{store="redis"\} (\d)/.exec((await get(`${adminUrl}/metrics`)).body.toString())?.[1];
    const trusted = await startProxy(yaml('ca.pem'));
    const untrusted = await startProxy(yaml('other.pem'));
    try {
      await until('the trusting proxy shares over TLS', async () => (await storeUp(trusted.adminUrl)) === '1');
      assert.equal((await get(`${trusted.url}/node/metrics`, SCRAPE_HEADERS)).status, 200);
      await until('the record is in Redis', async () => /e:node/.test(await redis.command('KEYS', 'scrapecache:e:*')));
      assert.equal(await storeUp(untrusted.adminUrl), '0');
      const alone = await get(`${untrusted.url}/node/metrics`, SCRAPE_HEADERS);
      assert.equal(alone.status, 200);
      assert.match(String(alone.headers['cache-status']), /fwd=miss/, 'it cannot read what the other stored, and fetches for itself');
    } finally {
      await Promise.all([trusted.close(), untrusted.close()]);
      await Promise.all([redis.close(), exporter.close()]);
    }
  });
});
