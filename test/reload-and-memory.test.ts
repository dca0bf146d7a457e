/** Hot reload keeps what it can; the byte bound holds under any mix of keys; shutdown finishes work in flight. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { startFakeExporter } from './helpers/fake-exporter.js';
import { get, post, SCRAPE_HEADERS, startProxy } from './helpers/proxy.js';

const HEAD = 'listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n';

test('a reload keeps the entries of untouched routes warm and drops those whose upstream or headers changed', async () => {
  const a = await startFakeExporter();
  const b = await startFakeExporter();
  const yaml = (extra: string) => `
routes:
  - name: kept
    path: /kept
    upstream: ${a.url}/metrics
  - name: moved
    path: /moved
    upstream: ${a.url}/metrics
${extra}`;
  const proxy = await startProxy(yaml(''));
  try {
    await get(`${proxy.url}/kept`, SCRAPE_HEADERS);
    await get(`${proxy.url}/moved`, SCRAPE_HEADERS);
    writeFileSync(
      proxy.file,
      HEAD +
        yaml('').replace(`path: /moved\n    upstream: ${a.url}/metrics`, `path: /moved\n    upstream: ${b.url}/metrics`) +
        `  - name: added\n    path: /added\n    upstream: ${b.url}/metrics\n    headers: { X-Scope: hw }\n`,
    );
    assert.equal(await proxy.app.reload(), undefined);
    const kept = await get(`${proxy.url}/kept`, SCRAPE_HEADERS);
    assert.match(String(kept.headers['cache-status']), /^scrapecache; hit/, 'untouched route stays warm');
    const moved = await get(`${proxy.url}/moved`, SCRAPE_HEADERS);
    assert.equal(moved.headers['cache-status'], 'scrapecache; fwd=miss; stored', 'changed upstream is fetched anew');
    assert.equal(b.count, 1);
    const added = await get(`${proxy.url}/added`, SCRAPE_HEADERS);
    assert.equal(added.status, 200);
    assert.equal(b.requests[1]!.headers['x-scope'], 'hw');
  } finally {
    await proxy.close();
    await a.close();
    await b.close();
  }
});

test('an invalid reload changes nothing and says why', async () => {
  const a = await startFakeExporter();
  const proxy = await startProxy(`routes:\n  - {name: a, path: /a, upstream: "${a.url}/metrics"}\n`);
  try {
    await get(`${proxy.url}/a`, SCRAPE_HEADERS);
    writeFileSync(proxy.file, `${HEAD}routes:\n  - {name: a, path: /a, upstream: "${a.url}/metrics", ttl: soon}\n`);
    const res = await post(`${proxy.adminUrl}/-/reload`);
    assert.equal(res.status, 400);
    assert.match(res.body.toString(), /proxy\.yaml:5:\d+: routes\[0\]\.ttl: invalid duration "soon"/);
    const hit = await get(`${proxy.url}/a`, SCRAPE_HEADERS);
    assert.match(String(hit.headers['cache-status']), /^scrapecache; hit/);
    assert.ok(proxy.logs.some((l) => l['msg'] === 'config reload failed; the running config stays'));
  } finally {
    await proxy.close();
    await a.close();
  }
});

test('a reload that changes the listen address says a restart is needed and keeps serving', async () => {
  const a = await startFakeExporter();
  const proxy = await startProxy(`routes:\n  - {name: a, path: /a, upstream: "${a.url}/metrics"}\n`);
  try {
    writeFileSync(proxy.file, `listen: 127.0.0.1:1\nadmin:\n  listen: 127.0.0.1:0\nroutes:\n  - {name: a, path: /a, upstream: "${a.url}/metrics"}\n`);
    assert.equal(await proxy.app.reload(), undefined);
    assert.ok(proxy.logs.some((l) => String(l['msg']).includes('only on restart') && JSON.stringify(l['settings']).includes('listen')));
    assert.equal((await get(`${proxy.url}/a`)).status, 200);
  } finally {
    await proxy.close();
    await a.close();
  }
});

test('cache.max_bytes holds under many distinct keys, evicting the least recently used', async () => {
  const a = await startFakeExporter();
  a.padding = 10_000;
  const proxy = await startProxy(`
cache:
  max_bytes: 100KiB
routes:
  - {name: any, path: /any, upstream: "${a.url}/metrics"}
`);
  try {
    for (let i = 0; i < 60; i++) {
      // Both codings held for half of them: the converted variant counts too.
      await get(`${proxy.url}/any?k=${i}`, SCRAPE_HEADERS);
      if (i % 2 === 0) await get(`${proxy.url}/any?k=${i}`, { accept: SCRAPE_HEADERS.accept });
      assert.ok(proxy.app.cache.bytes <= 100 * 1024, `held ${proxy.app.cache.bytes} bytes after ${i + 1} keys`);
    }
    const held = [...proxy.app.cache.entries()];
    assert.ok(held.length > 3 && held.length < 15, `${held.length} entries held`);
    const recent = await get(`${proxy.url}/any?k=59`, SCRAPE_HEADERS);
    assert.match(String(recent.headers['cache-status']), /^scrapecache; hit/);
    const old = await get(`${proxy.url}/any?k=0`, SCRAPE_HEADERS);
    assert.equal(old.headers['cache-status'], 'scrapecache; fwd=miss; stored');
  } finally {
    await proxy.close();
    await a.close();
  }
});

test('an entry larger than the whole cache is served but not stored', async () => {
  const a = await startFakeExporter();
  a.padding = 50_000;
  const proxy = await startProxy(`
cache:
  max_bytes: 20KiB
routes:
  - {name: big, path: /big, upstream: "${a.url}/metrics"}
`);
  try {
    const first = await get(`${proxy.url}/big`, SCRAPE_HEADERS);
    assert.equal(first.status, 200);
    assert.equal(proxy.app.cache.count, 0);
  } finally {
    await proxy.close();
    await a.close();
  }
});

test('shutdown lets a fill in flight finish and answer before the listeners close', async () => {
  const a = await startFakeExporter();
  a.delayMs = 300;
  const proxy = await startProxy(`routes:\n  - {name: a, path: /a, upstream: "${a.url}/metrics"}\n`);
  try {
    const pending = get(`${proxy.url}/a`, SCRAPE_HEADERS);
    await a.arrived(1);
    const closing = proxy.app.close(3000);
    const res = await pending;
    assert.equal(res.status, 200);
    await closing;
    await assert.rejects(get(`${proxy.url}/a`), /ECONNREFUSED/);
  } finally {
    await a.close();
  }
});

test('a fetch from the old upstream that finishes after a reload is not stored', async () => {
  const a = await startFakeExporter();
  const b = await startFakeExporter();
  a.delayMs = 300;
  const proxy = await startProxy(`routes:\n  - {name: r, path: /r, upstream: "${a.url}/metrics"}\n`);
  try {
    const old = get(`${proxy.url}/r`, SCRAPE_HEADERS);
    await a.arrived(1);
    writeFileSync(proxy.file, `${HEAD}routes:\n  - {name: r, path: /r, upstream: "${b.url}/metrics"}\n`);
    assert.equal(await proxy.app.reload(), undefined);
    assert.equal((await old).status, 200, 'the request in flight still gets its answer');
    const next = await get(`${proxy.url}/r`, SCRAPE_HEADERS);
    assert.equal(next.headers['cache-status'], 'scrapecache; fwd=miss; stored');
    assert.equal(b.count, 1, 'the next scrape went to the new upstream');
  } finally {
    await proxy.close();
    await a.close();
    await b.close();
  }
});

test('invalidating one route does not keep a fill of another route from being stored', async () => {
  const a = await startFakeExporter();
  a.delayMs = 300;
  const proxy = await startProxy(`routes:\n  - {name: slow, path: /slow, upstream: "${a.url}/metrics"}\n  - {name: other, path: /other, upstream: "${a.url}/metrics"}\n`);
  try {
    const pending = get(`${proxy.url}/slow`, SCRAPE_HEADERS);
    await a.arrived(1);
    assert.equal((await post(`${proxy.adminUrl}/invalidate`, { route: 'other' })).status, 200);
    assert.equal((await pending).headers['cache-status'], 'scrapecache; fwd=miss; stored');
    const next = await get(`${proxy.url}/slow`, SCRAPE_HEADERS);
    assert.match(String(next.headers['cache-status']), /^scrapecache; hit/);
    assert.equal(a.count, 1);
  } finally {
    await proxy.close();
    await a.close();
  }
});
