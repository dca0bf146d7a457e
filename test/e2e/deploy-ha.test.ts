// The HA deployment files agree with each other: docker-compose.ha.yml, deploy/proxy.ha.yaml and
// deploy/prometheus.ha.yml. No Docker engine runs here; this checks what `docker compose -f
// docker-compose.ha.yml up` relies on: two replicas with one config, Redis as a service, two
// Prometheus servers that each scrape every target through both replicas.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const read = (path: string) => readFileSync(join(root, path), 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  volumes?: string[];
  ports?: string[];
  command?: string[];
}
const compose = parse(read('docker-compose.ha.yml'), { uniqueKeys: true, merge: true }) as { services: Record<string, Service> };
const prometheus = parse(read('deploy/prometheus.ha.yml')) as {
  scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }>; relabel_configs?: Array<{ target_label?: string; replacement?: string }> }>;
};
const replicas = Object.entries(compose.services).filter(([, s]) => s.volumes?.includes('./deploy/proxy.ha.yaml:/etc/scrapecache/proxy.yaml:ro'));

test('two scrapecache replicas run the same config, with their own published ports', () => {
  assert.deepEqual(replicas.map(([name]) => name).sort(), ['scrapecache-a', 'scrapecache-b']);
  for (const [, s] of replicas) assert.ok(s.build, 'built from the Dockerfile');
  const published = replicas.flatMap(([, s]) => s.ports ?? []);
  assert.equal(new Set(published).size, published.length, 'no host port is published twice');
  assert.ok(published.every((p) => p.startsWith('127.0.0.1:')));
});

test('the replicas config is valid and points at the compose Redis, which keeps nothing on disk and is bounded', () => {
  // The defaults of ${VAR:-default}, as the replicas see them without the variables set.
  const text = read('deploy/proxy.ha.yaml');
  const config = parseConfig(text, join(root, 'deploy/proxy.ha.yaml'), {});
  const redis = config.cache.redis;
  assert.ok(redis, 'cache.redis is set');
  assert.ok(compose.services[redis.host], `${redis.host} is a compose service`);
  const command = compose.services[redis.host]!.command ?? [];
  const flag = (name: string) => command[command.indexOf(name) + 1];
  assert.equal(flag('--save'), '');
  assert.equal(flag('--appendonly'), 'no');
  assert.match(flag('--maxmemory') ?? '', /^\d+[kmg]b$/);
  assert.equal(flag('--maxmemory-policy'), 'allkeys-lru');
  for (const route of config.routes) assert.ok(compose.services[route.upstream.hostname], `route ${route.name}: ${route.upstream.hostname} is a service`);
});

test('two Prometheus servers load the HA scrape config, and every job reaches both replicas', () => {
  const servers = Object.entries(compose.services).filter(([, s]) => s.volumes?.includes('./deploy/prometheus.ha.yml:/etc/prometheus/prometheus.yml:ro'));
  assert.equal(servers.length, 2);
  const reached = new Set<string>();
  for (const job of prometheus.scrape_configs) {
    const relabelled = job.relabel_configs?.find((r) => r.target_label === '__address__')?.replacement;
    for (const address of relabelled ? [relabelled] : job.static_configs.flatMap((c) => c.targets)) {
      const host = address.split(':')[0]!;
      assert.ok(compose.services[host], `job ${job.job_name}: ${host} is a service`);
      reached.add(host);
    }
  }
  assert.ok(reached.has('scrapecache-a') && reached.has('scrapecache-b'));
  for (const mount of Object.values(compose.services).flatMap((s) => s.volumes ?? []).filter((v) => v.startsWith('./'))) {
    assert.ok(existsSync(join(root, mount.split(':')[0]!)), `${mount} exists`);
  }
});
