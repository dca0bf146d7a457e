/**
 * The ha overlay run for real, as far as it can be without a cluster: redis-server started with
 * the StatefulSet's own command line and the redis.conf of its ConfigMap, and two proxies on the
 * overlay's proxy.yaml (moved to loopback), sharing one upstream fetch through it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { startCli, type CliProcess } from './helpers/cli-process.js';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { build, named, type K8sObject } from './helpers/kubernetes-manifests.js';
import { Child, freePort, isExecutable, sumSamples, waitFor } from './helpers/processes.js';
import { REDIS_SERVER } from './helpers/redis-server.js';
import { skipUnlessUnstable } from './helpers/unstable-binaries.js';

const REDIS_CLI = '/usr/bin/redis-cli';

function skipUnlessRedis(): false | string {
  const kustomize = skipUnlessUnstable('kustomize');
  if (kustomize) return kustomize;
  if (isExecutable(REDIS_SERVER) && isExecutable(REDIS_CLI)) return false;
  const reason = `no ${REDIS_SERVER} or ${REDIS_CLI}: run \`bash .ci/install-e2e.sh\``;
  if (process.env.CI === 'true') throw new Error(reason);
  return reason;
}
const skip = skipUnlessRedis();

let work: string;
let redis: Child;
let redisPort: number;
let exporter: FakeExporter;
const password = 'k8s-ha-password';
const token = 'k8s-ha-token';
const replicas: CliProcess[] = [];

const configMap = (objects: K8sObject[], prefix: string) => {
  const found = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith(prefix));
  assert.ok(found, `a ConfigMap ${prefix}*`);
  return found.data as Record<string, string>;
};

const redisCli = (...args: string[]) => execFileSync(REDIS_CLI, ['-p', String(redisPort), '--no-auth-warning', '-a', password, ...args], { encoding: 'utf8' }).trim();

before(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), 'scrapecache-k8s-ha-'));
  const objects = build('overlays/ha');
  const statefulSet = named(objects, 'StatefulSet', 'redis');
  const container = statefulSet.spec.template.spec.containers[0];
  const confMount = container.volumeMounts.find((m: { name: string }) => m.name === 'config').mountPath as string;
  writeFileSync(join(work, 'redis.conf'), configMap(objects, 'redis-config')['redis.conf']!);
  // The container's command, with the mounted config where this test put it and the Secret's
  // password where Kubernetes expands $(REDIS_PASSWORD); then a loopback port and folder.
  const [command, ...args] = (container.command as string[]).map((a) => a.replace(`${confMount}/`, `${work}/`).replace('$(REDIS_PASSWORD)', password));
  assert.equal(command, 'redis-server');
  redisPort = await freePort();
  redis = new Child('redis-server', REDIS_SERVER, [...args, '--port', String(redisPort), '--bind', '127.0.0.1', '--dir', work]);
  await waitFor('redis-server answers PING', async () => (redisCli('PING') === 'PONG' ? true : undefined), { watch: [redis] });

  exporter = await startFakeExporter();
  const config = parse(configMap(objects, 'scrapecache-config')['proxy.yaml']!) as {
    listen: string;
    admin: { listen: string; token_file: string };
    cache: { redis: { url: string; password_file: string } };
    routes: Array<{ upstream: string }>;
  };
  writeFileSync(join(work, 'token'), `${token}\n`);
  writeFileSync(join(work, 'redis-password'), `${password}\n`);
  config.listen = '127.0.0.1:0';
  config.admin.listen = '127.0.0.1:0';
  config.admin.token_file = join(work, 'token');
  config.cache.redis.password_file = join(work, 'redis-password');
  const url = new URL(config.cache.redis.url);
  url.host = `127.0.0.1:${redisPort}`;
  config.cache.redis.url = url.toString();
  for (const route of config.routes) route.upstream = exporter.url + new URL(route.upstream).pathname;
  writeFileSync(join(work, 'proxy.yaml'), stringify(config));
  for (let i = 0; i < 2; i++) replicas.push(await startCli(join(work, 'proxy.yaml')));
});

after(async () => {
  for (const replica of replicas) {
    replica.child.kill('SIGTERM');
    await replica.exited;
  }
  await redis?.stop();
  await exporter?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

test('the example Redis runs on its manifest: maxmemory, allkeys-lru, no persistence, a password', { skip }, () => {
  assert.deepEqual(redisCli('CONFIG', 'GET', 'maxmemory-policy').split('\n'), ['maxmemory-policy', 'allkeys-lru']);
  assert.deepEqual(redisCli('CONFIG', 'GET', 'maxmemory').split('\n'), ['maxmemory', String(256 * 2 ** 20)]);
  assert.deepEqual(redisCli('CONFIG', 'GET', 'appendonly').split('\n'), ['appendonly', 'no']);
  assert.equal(redisCli('CONFIG', 'GET', 'save'), 'save', 'save is empty: no snapshots');
  const anonymous = execFileSync(REDIS_CLI, ['-p', String(redisPort), 'PING'], { encoding: 'utf8' });
  assert.match(anonymous, /NOAUTH/, 'without the password Redis refuses');
});

test('two replicas on the ha proxy.yaml share one upstream fetch through that Redis', { skip }, async () => {
  const scrape = async (replica: CliProcess) => {
    const res = await fetch(`${replica.scrapeUrl}/node/metrics`, { headers: { accept: 'text/plain' } });
    await res.text();
    return { status: res.status, cacheStatus: res.headers.get('cache-status') ?? '' };
  };
  const first = await scrape(replicas[0]!);
  assert.equal(first.status, 200);
  assert.match(first.cacheStatus, /fwd=miss; stored/);
  // The other replica learns of the record over Redis: a hit without a fetch of its own.
  const second = await waitFor('the second replica serves the shared record', async () => {
    const answer = await scrape(replicas[1]!);
    return /\bhit\b/.test(answer.cacheStatus) ? answer : undefined;
  });
  assert.equal(second.status, 200);
  assert.equal(exporter.count, 1, 'one upstream fetch for both replicas');
  for (const replica of replicas) {
    const metrics = await (await fetch(`${replica.adminUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
    assert.equal(sumSamples(metrics, 'scrapecache_store_up', { store: 'redis' }), 1, 'Redis is up for every replica');
  }
});
