/** SPEC 2 `overrides` (issue 21): per-target ttl and stale windows by query parameter values. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { windowsFor } from '../src/cache/route-windows.js';
import type { ScrapeTarget } from '../src/cache/scrape-cache.js';
import { parseConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { get, post, SCRAPE_HEADERS, startProxy } from './helpers/proxy.js';
import { newScrapeCache } from './helpers/scrape-cache.js';

const HEAD = 'listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n';
const closers: Array<() => Promise<unknown> | unknown> = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

async function exporter(): Promise<FakeExporter> {
  const e = await startFakeExporter();
  closers.push(() => e.close());
  return e;
}

function snmpYaml(upstream: string, overrides: string): string {
  return `defaults:
  ttl: 1m
routes:
  - name: snmp
    path: /snmp
    upstream: ${upstream}
    query_keys: [target, module]
    stale_if_error: 0s
    overrides:
${overrides}`;
}

test('the first override whose every parameter has one of its values wins; patterns with *; else the route windows', () => {
  const config = parseConfig(
    snmpYaml(
      'http://127.0.0.1:9116/snmp',
      `      - { query: { module: [inventory, entity] }, ttl: 6h, stale_if_error: 1d }
      - { query: { module: if_mib, target: ["10.1.*"] }, ttl: 5m }
      - { query: { target: ["*.example.org"] }, stale_while_revalidate: 30s }
      - { query: { module: [if_mib] }, ttl: 2m }`,
    ),
    'overrides.yaml',
  );
  const route = config.routes[0]!;
  const w = (query: string) => windowsFor(route, query);
  assert.deepEqual(w('module=inventory&target=a'), { query: [{ name: 'module', values: ['inventory', 'entity'] }], ttlMs: 6 * 3_600_000, staleWhileRevalidateMs: 0, staleIfErrorMs: 86_400_000 });
  assert.equal(w('module=entity&target=a').ttlMs, 6 * 3_600_000);
  assert.equal(w('module=if_mib&target=10.1.2.3').ttlMs, 300_000, 'both parameters match: the second override');
  assert.equal(w('module=if_mib&target=10.2.0.1').ttlMs, 120_000, 'target outside 10.1.*: the fourth');
  // An override leaves the windows it does not set to the route (ttl 1m from defaults).
  assert.deepEqual([w('target=sw1.example.org').ttlMs, w('target=sw1.example.org').staleWhileRevalidateMs], [60_000, 30_000]);
  assert.equal(w('target=sw1.example.org.evil').ttlMs, 60_000, 'a pattern matches the whole value');
  assert.equal(w('module=inventory1&target=a'), route, 'values match exactly');
  assert.equal(w(''), route);
  // A dot in a pattern is a dot, not any character.
  assert.equal(w('module=if_mib&target=10x1x2').ttlMs, 120_000);
});

test('a key that matches an override stays fresh for its ttl while the route ttl sends the others upstream', async () => {
  const e = await exporter();
  const config = parseConfig(snmpYaml(`${e.url}/snmp`, '      - { query: { module: [inventory] }, ttl: 6h }'), 'ttl.yaml');
  let now = 1_700_000_000_000;
  const cache = newScrapeCache(1 << 20, undefined, createLogger('silent'), () => now);
  closers.push(() => cache.close());
  cache.setRoutes(config.routes);
  const route = config.routes[0]!;
  const target = (query: string): ScrapeTarget => ({ route, path: '/snmp', query, representation: 'text', accept: 'text/plain' });
  await cache.lookup(target('module=inventory&target=a'));
  await cache.lookup(target('module=if_mib&target=a'));
  assert.equal(e.count, 2);
  now += 2 * 60_000;
  const inventory = cache.lookup(target('module=inventory&target=a'));
  assert.equal('cache' in inventory && inventory.cache, 'hit', 'the inventory walk is fresh for 6h');
  assert.equal((await cache.lookup(target('module=if_mib&target=a'))).cache, 'miss', 'if_mib is fresh for the route ttl of 1m');
  assert.equal(e.count, 3);
  now += 6 * 3_600_000;
  assert.equal((await cache.lookup(target('module=inventory&target=a'))).cache, 'miss');
});

test("an override's stale_if_error covers a failing upstream where the route's window would not", async () => {
  const e = await exporter();
  const config = parseConfig(snmpYaml(`${e.url}/snmp`, '      - { query: { module: [inventory] }, stale_if_error: 1d }'), 'sie.yaml');
  let now = 1_700_000_000_000;
  const cache = newScrapeCache(1 << 20, undefined, createLogger('silent'), () => now);
  closers.push(() => cache.close());
  cache.setRoutes(config.routes);
  const route = config.routes[0]!;
  const target = (query: string): ScrapeTarget => ({ route, path: '/snmp', query, representation: 'text;0.0.4', accept: 'text/plain' });
  await cache.lookup(target('module=inventory&target=a'));
  await cache.lookup(target('module=if_mib&target=a'));
  now += 5 * 60_000;
  e.fault = 'status-500';
  const inventory = await cache.lookup(target('module=inventory&target=a'));
  assert.equal(inventory.cache, 'stale');
  assert.equal(inventory.entry.status, 200);
  const other = await cache.lookup(target('module=if_mib&target=a'));
  assert.equal(other.entry.status, 500, 'no stale window for if_mib: the upstream error is the answer');
  assert.equal(other.stored, false);
});

test('a reload that changes the overrides applies from the next fill; /cache and the status page show what applies', async () => {
  const e = await exporter();
  const yaml = (overrides: string) => snmpYaml(`${e.url}/snmp`, overrides);
  const proxy = await startProxy(yaml('      - { query: { module: [inventory] }, ttl: 1h }'));
  closers.push(() => proxy.close());
  const listing = async () => JSON.parse((await get(`${proxy.adminUrl}/cache`)).body.toString()) as Array<{ query: string; lifetime_seconds: number; override: string | null; ttl_seconds: number }>;

  await get(`${proxy.url}/snmp?module=inventory&target=a`, SCRAPE_HEADERS);
  await get(`${proxy.url}/snmp?module=if_mib&target=a`, SCRAPE_HEADERS);
  let rows = await listing();
  const inventory = () => rows.find((r) => r.query === 'module=inventory&target=a')!;
  const ifMib = () => rows.find((r) => r.query === 'module=if_mib&target=a')!;
  assert.deepEqual([inventory().lifetime_seconds, inventory().override], [3600, 'module=inventory']);
  assert.ok(inventory().ttl_seconds > 3500);
  assert.deepEqual([ifMib().lifetime_seconds, ifMib().override], [60, null]);
  assert.match((await get(`${proxy.adminUrl}/`)).body.toString(), /<code>module=inventory<\/code>: ttl 1h/);

  writeFileSync(proxy.file, HEAD + yaml('      - { query: { module: [if_mib] }, ttl: 2h, stale_if_error: 1d }'));
  assert.equal(await proxy.app.reload(), undefined);
  rows = await listing();
  // Held copies keep the times they were fetched with (the route fetches the same way: they stay warm).
  assert.deepEqual([inventory().lifetime_seconds, inventory().override], [3600, null]);
  assert.deepEqual([ifMib().lifetime_seconds, ifMib().override], [60, 'module=if_mib']);
  const page = (await get(`${proxy.adminUrl}/`)).body.toString();
  assert.match(page, /<code>module=if_mib<\/code>: ttl 2h, stale_if_error 1d/);
  assert.ok(!page.includes('<code>module=inventory</code>'));

  assert.equal((await post(`${proxy.adminUrl}/invalidate`, { path: '/snmp' })).status, 200);
  await get(`${proxy.url}/snmp?module=inventory&target=a`, SCRAPE_HEADERS);
  await get(`${proxy.url}/snmp?module=if_mib&target=a`, SCRAPE_HEADERS);
  rows = await listing();
  assert.equal(inventory().lifetime_seconds, 60, 'the next fill takes the route ttl');
  assert.equal(ifMib().lifetime_seconds, 7200, 'and the new override');

  // An invalid override is refused with its position, and the running one stays.
  writeFileSync(proxy.file, HEAD + yaml('      - { query: { modul: [if_mib] }, ttl: 2h }'));
  const refused = await proxy.app.reload();
  assert.match(String(refused), /proxy\.yaml:\d+:\d+: query parameter "modul" is not in query_keys/);
  assert.match((await get(`${proxy.adminUrl}/`)).body.toString(), /<code>module=if_mib<\/code>: ttl 2h/);
});
