/** One clock from startApp's options: every answer that tells time tells the same time. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startFakeExporter } from './helpers/fake-exporter.js';
import { get, SCRAPE_HEADERS, startProxy } from './helpers/proxy.js';
import { TestClock } from './helpers/test-clock.js';

test('after 90 s of the app clock, the scrape, GET /cache, /metrics and the status page all count 90 s from the fetch', async () => {
  const exporter = await startFakeExporter();
  const clock = new TestClock();
  const proxy = await startProxy(`routes:\n  - {name: r, path: /r, upstream: "${exporter.url}/metrics", ttl: 5m}\n`, { clock });
  try {
    await get(`${proxy.url}/r`, SCRAPE_HEADERS);
    clock.advance(90_200);

    const hit = await get(`${proxy.url}/r`, SCRAPE_HEADERS);
    assert.equal(hit.headers['age'], '90');
    assert.equal(hit.headers['cache-status'], 'scrapecache; hit; ttl=209');

    const [row] = JSON.parse((await get(`${proxy.adminUrl}/cache`)).body.toString()) as Array<{ age_seconds: number; ttl_seconds: number; fresh: boolean }>;
    assert.deepEqual({ age: row!.age_seconds, ttl: row!.ttl_seconds, fresh: row!.fresh }, { age: 90, ttl: 209, fresh: true });

    const metrics = (await get(`${proxy.adminUrl}/metrics`)).body.toString();
    const oldest = Number(/^scrapecache_cache_oldest_age_seconds\{route="r"\} (\S+)$/m.exec(metrics)?.[1]);
    assert.ok(oldest >= 90 && oldest < 91, `oldest age ${oldest}`);

    const page = (await get(`${proxy.adminUrl}/`)).body.toString();
    assert.match(page, /data-live="route\/r\/fetch">[\s\S]*?>1 min 30 s ago<\/time>/, 'the last fetch, as old on the page as on the scrape');
  } finally {
    await proxy.close();
    await exporter.close();
  }
});
