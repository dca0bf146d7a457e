/**
 * The status page's cache levels panel: memory, and the disk or Redis level where one is
 * configured, each up or down since when, what it holds, and its last error. Real failures: a
 * cache directory that stops being one, a redis-server killed.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, renameSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { get, SCRAPE_HEADERS, startProxy, type TestProxy } from './helpers/proxy.js';
import { REDIS_SERVER, startRedis } from './helpers/redis-server.js';

let exporter: FakeExporter;
before(async () => {
  exporter = await startFakeExporter();
});
after(() => exporter.close());

const routes = () => `routes:
  - name: node
    path: /node/metrics
    upstream: ${exporter.url}/metrics
  - name: other
    path: /other/metrics
    upstream: ${exporter.url}/other
`;

/** The text of one level's card, tags dropped, whitespace folded. */
async function levelCard(proxy: TestProxy, level: string): Promise<string> {
  const page = (await get(`${proxy.adminUrl}/`)).body.toString();
  const card = new RegExp(`<article class="card" aria-labelledby="level-${level}" data-level="${level}">([\\s\\S]*?)</article>`).exec(page);
  assert.ok(card, `a ${level} card on the page`);
  return card[1]!.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
}

async function until(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('without a second level', () => {
  it('shows memory only: entries, bytes and cache.max_bytes', async () => {
    const proxy = await startProxy(`cache:\n  max_bytes: 64MiB\n${routes()}`);
    try {
      await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
      const page = (await get(`${proxy.adminUrl}/`)).body.toString();
      assert.match(page, /<h2 id="levels-h">Cache levels<\/h2>/);
      assert.doesNotMatch(page, /data-level="disk"|data-level="redis"/);
      assert.match(await levelCard(proxy, 'memory'), /^Memory State up Holds 1 entry, [\d.]+ (B|KiB) of 64\.0 MiB$/);
    } finally {
      await proxy.close();
    }
  });
});

describe('with cache.disk', () => {
  it('shows the directory up with what it holds; a failed write turns it down with the error; the next good write brings it back', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'scrapecache-levels-')), 'cache');
    const proxy = await startProxy(`cache:\n  disk:\n    path: ${dir}\n    max_bytes: 1MiB\n${routes()}`);
    try {
      await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
      await until('the write', async () => /1 entry/.test(await levelCard(proxy, 'disk')));
      const up = await levelCard(proxy, 'disk');
      assert.match(up, new RegExp(`^Disk \\(cache\\.disk\\) Where ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} State up since \\d+ ?\\w* ago Holds 1 entry, [\\d.]+ (B|KiB) of 1\\.0 MiB Last error none$`));

      // The directory stops being one: every write fails (as root too, unlike a chmod).
      renameSync(dir, `${dir}.away`);
      writeFileSync(dir, 'not a directory');
      await get(`${proxy.url}/other/metrics`, SCRAPE_HEADERS);
      await until('the failed write', async () => /State down/.test(await levelCard(proxy, 'disk')));
      const down = await levelCard(proxy, 'disk');
      assert.match(down, /State down since \d+ ?\w* ago — entries are kept in memory only/);
      assert.match(down, /Last error \d+ ?\w* ago cannot write \(.*ENOTDIR.*\)$/);

      rmSync(dir);
      renameSync(`${dir}.away`, dir);
      await proxy.app.cache.invalidate({ route: 'other' });
      await get(`${proxy.url}/other/metrics`, SCRAPE_HEADERS);
      await until('the good write', async () => /State up/.test(await levelCard(proxy, 'disk')));
      assert.match(await levelCard(proxy, 'disk'), /Holds 2 entries.* Last error \d+ ?\w* ago cannot write/, 'the last error stays, with when it was');
    } finally {
      await proxy.close();
    }
  });
});

describe('with cache.redis', { skip: existsSync(REDIS_SERVER) ? false : `no ${REDIS_SERVER}: run \`bash .ci/install-e2e.sh\`` }, () => {
  it('shows Redis up with the records under its prefix; killed, down since then with the reason', async () => {
    const redis = await startRedis();
    const proxy = await startProxy(`cache:\n  redis:\n    url: ${redis.url}\n    key_prefix: "levels:"\n    timeout: 250ms\n${routes()}`);
    try {
      await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS);
      await until('the record in Redis', async () => /1 entry under the key prefix/.test(await levelCard(proxy, 'redis')));
      // Counted at most every 10 s; the first count came after the write.
      const up = await levelCard(proxy, 'redis');
      assert.match(up, new RegExp(`^Redis \\(cache\\.redis\\) Where ${redis.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} State up since \\d+ ?\\w* ago Holds 1 entry under the key prefix; the server uses [\\d.]+ MiB \\(counted \\d+ ?\\w* ago ?\\) Last error none$`));

      await redis.kill();
      await until('Redis down', async () => /State down/.test(await levelCard(proxy, 'redis')));
      const down = await levelCard(proxy, 'redis');
      assert.match(down, /State down since \d+ ?\w* ago — each replica goes on alone, from its own memory/);
      assert.match(down, /Last error \d+ ?\w* ago \S.*$/);
      // Scrapes go on from memory meanwhile.
      assert.equal((await get(`${proxy.url}/node/metrics`, SCRAPE_HEADERS)).status, 200);
    } finally {
      await proxy.close();
      await redis.close();
    }
  });
});
